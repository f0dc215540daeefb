package redis

import (
	"context"
	"fmt"
	"time"
)

// WaitForReplicas makes every verification wait, within timeout, until n
// replicas hold what it wrote, and fail if fewer do. Redis replicates
// after it answers: on Sentinel, a master that dies right after a code was
// used there leaves a replica on which the challenge is still live, and
// once that replica is promoted the same code would verify a second time.
// With the wait, a use the replicas did not get is an error (the request
// fails closed, and the code is spent on the old master), never a step-up.
// n 0 (the default) waits for nothing.
func (s *Store) WaitForReplicas(n int, timeout time.Duration) *Store {
	s.waitReplicas, s.waitTimeout = n, timeout
	return s
}

// runVerify runs the verify script and, with WaitForReplicas, WAIT on the
// same connection (a pipeline): WAIT counts the replicas that have this
// connection's writes, so on another connection it would prove nothing.
func (s *Store) runVerify(ctx context.Context, keys []string, args ...any) ([]any, error) {
	if s.waitReplicas == 0 {
		return verifyScript.Run(ctx, s.client, keys, args...).Slice()
	}
	pipe := s.client.Pipeline()
	// EVAL, not EVALSHA: a master just promoted may not have the script
	// cached, and a NOSCRIPT inside a pipeline cannot fall back. Redis
	// compiles a script once either way.
	run := verifyScript.Eval(ctx, pipe, keys, args...)
	wait := pipe.Do(ctx, "WAIT", s.waitReplicas, s.waitTimeout.Milliseconds())
	_, _ = pipe.Exec(ctx)
	res, err := run.Slice()
	if err != nil {
		return nil, err
	}
	if n, err := wait.Int64(); err != nil || n < int64(s.waitReplicas) {
		return nil, fmt.Errorf("%d of %d replicas acknowledged the verification within %s (%v): not counting it", n, s.waitReplicas, s.waitTimeout, err)
	}
	return res, nil
}
