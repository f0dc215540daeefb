package otp

import (
	"fmt"
	"regexp"

	"github.com/nyaruka/phonenumbers"
)

// prefixPattern is a number without its last 4 digits: + and 1 to 11
// digits (E.164 has at most 15).
var prefixPattern = regexp.MustCompile(`^\+[1-9][0-9]{0,10}$`)

// wholeNumberPattern is + and the digits of a whole E.164 number.
var wholeNumberPattern = regexp.MustCompile(`^\+[1-9][0-9]{4,14}$`)

// HistoryPrefixOf reads what an operator gave as a number prefix: the
// prefix itself (+44770090 for +447700900123), or a whole number, whose
// prefix it returns. A prefix is keyed in the store, so a digit too many
// or too few finds nothing rather than something near: a prefix that no
// plausible number of its country has, 4 digits on, is refused with what a
// prefix is, rather than answered with an empty history.
func HistoryPrefixOf(typed string) (string, error) {
	if !wholeNumberPattern.MatchString(typed) && !prefixPattern.MatchString(typed) {
		return "", fmt.Errorf("prefix %q: expected + and digits: a number without its last 4 digits (+44770090 for +447700900123), or the whole number", typed)
	}
	if plausibleNumber(typed + "0000") {
		return typed, nil
	}
	if plausibleNumber(typed) {
		return numberPrefix(typed), nil
	}
	return "", fmt.Errorf("prefix %q: no number starts with it and has 4 digits more: a prefix is the number without its last 4 digits (+44770090 for +447700900123), or give the whole number", typed)
}

// plausibleNumber reports whether e164 could be a number the phone policy
// takes: a valid number of some country, or one of a mobile's length
// (a mobile_prefixes number, or a range the library does not know yet).
func plausibleNumber(e164 string) bool {
	n, err := phonenumbers.Parse(e164, "")
	return err == nil && (phonenumbers.IsValidNumber(n) || (phonenumbers.IsPossibleNumber(n) && hasMobileLength(n)))
}
