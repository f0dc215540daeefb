//go:build !race

package otp_test

// raceEnabled: see race_on_test.go.
const raceEnabled = false
