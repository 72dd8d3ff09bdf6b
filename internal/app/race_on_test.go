//go:build race

package app

// raceDetector: this test binary runs with the race detector, whose shadow
// memory grows the resident set on any allocation.
const raceDetector = true
