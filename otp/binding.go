package otp

import (
	"errors"
	"fmt"
	"time"
)

// BindRequest binds a phone number to an identity.
type BindRequest struct {
	Subject string
	// PhoneHash (Keys.PhoneHash) identifies the number in the store.
	PhoneHash string
	// PhoneSealed (Keys.SealPhone) gives the number back to the service,
	// and only to it.
	PhoneSealed []byte
	PhoneMasked string
	// MaxIdentitiesPerNumber caps the identities one number may vouch for.
	MaxIdentitiesPerNumber int
	Now                    time.Time
}

// Validate reports a request no store should act on.
func (r BindRequest) Validate() error {
	switch {
	case r.Subject == "":
		return errors.New("bind phone: empty subject")
	case r.PhoneHash == "" || len(r.PhoneSealed) == 0:
		return errors.New("bind phone: missing phone hash or sealed number")
	case r.MaxIdentitiesPerNumber < 1:
		return fmt.Errorf("bind phone: max identities per number %d, expected at least 1", r.MaxIdentitiesPerNumber)
	}
	return nil
}

// BoundPhone is the number bound to an identity, as the store keeps it.
type BoundPhone struct {
	PhoneHash   string
	PhoneSealed []byte
	PhoneMasked string
	BoundAt     time.Time
}
