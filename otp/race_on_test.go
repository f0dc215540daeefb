//go:build race

package otp_test

// raceEnabled: the race detector's instrumentation allocates, so tests of
// allocation counts skip under -race.
const raceEnabled = true
