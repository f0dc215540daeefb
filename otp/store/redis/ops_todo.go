package redis

// Temporary: replaced by the real operator operations (being written).

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

var errTODO = errors.New("redis store: operator operations not written yet")

func (s *Store) Revoke(ctx context.Context, subject string, notBefore time.Time) error {
	return errTODO
}
func (s *Store) NotBefore(ctx context.Context, subject string) (time.Time, error) {
	return time.Time{}, nil
}
func (s *Store) Unlock(ctx context.Context, subject string) error { return errTODO }
func (s *Store) Locked(ctx context.Context, now time.Time, max int) ([]otp.LockedIdentity, int, error) {
	return nil, 0, errTODO
}
func (s *Store) LimitCount(ctx context.Context, check otp.LimitCheck, now time.Time) (int, error) {
	return 0, errTODO
}
