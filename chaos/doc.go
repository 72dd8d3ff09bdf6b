// Package chaos holds fault tests: real biomatch processes killed and
// restarted while work is in flight, then the invariants checked against
// PostgreSQL. The short ones run inside `make test`.
package chaos
