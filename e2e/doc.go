// Package e2e holds end-to-end tests that need more than Go: PrivateID's
// web SDK, unchanged, in headless Chromium against a real biomatch stack.
// scripts/e2e-setup.sh (run by `make test`) installs what they need.
package e2e
