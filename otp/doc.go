// Package otp is the Caddy-free core of caddy-sms-stepup: one-time codes,
// challenges and their verification rules, phone number policy, step-up
// tokens, and the Store and Gateway interfaces that the Caddy modules wrap.
//
// Nothing in this package (or below it) imports Caddy, so the rules that a
// security review cares about can be read and tested on their own.
package otp
