package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// operatorError is an action's failure in the words the operator reads,
// wrapping its cause.
type operatorError struct {
	msg string
	err error
}

func (e *operatorError) Error() string { return e.msg }
func (e *operatorError) Unwrap() error { return e.err }

// explainStoreError turns a store failure into one line naming h's store
// (and the command's --timeout, when one is given and ran out), still
// wrapping otp.ErrStoreUnavailable.
func explainStoreError(err error, h Handler, timeout time.Duration) error {
	if !errors.Is(err, otp.ErrStoreUnavailable) {
		return err
	}
	typ, addr := h.DescribeStore()
	msg := storeError(err)
	if errors.Is(err, context.DeadlineExceeded) && timeout > 0 {
		msg += fmt.Sprintf(" (no answer within --timeout %s)", timeout)
	}
	return &operatorError{unreachableStore(typ, addr, msg), err}
}

// unreachableStore is the one line that says a store can't be read, for a
// store here and for the running Caddy's status alike.
func unreachableStore(typ, addr, msg string) string {
	return fmt.Sprintf("store %s at %s is unreachable: %s", typ, addr, msg)
}

// storeError is a store failure in one line, without the "store
// unavailable" prefix the caller's sentence already says.
func storeError(err error) string {
	return strings.TrimPrefix(err.Error(), otp.ErrStoreUnavailable.Error()+": ")
}
