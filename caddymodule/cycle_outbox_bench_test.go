package caddymodule_test

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"
)

// cbOutbox follows the outbox file and hands each message to whoever
// waits for its number.
type cbOutbox struct {
	mu      sync.Mutex
	waiting map[string]chan string
	done    chan struct{}
}

func cbTail(b *testing.B, path string) *cbOutbox {
	o := &cbOutbox{waiting: map[string]chan string{}, done: make(chan struct{})}
	go func() {
		var f *os.File
		for f == nil {
			var err error
			if f, err = os.Open(path); err != nil {
				select {
				case <-o.done:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}
		defer f.Close()
		r := bufio.NewReader(f)
		var partial string
		for {
			line, err := r.ReadString('\n')
			partial += line
			if err != nil {
				// At the end of what was written so far: the file has no
				// event to wait on, so look again shortly.
				select {
				case <-o.done:
					return
				case <-time.After(200 * time.Microsecond):
				}
				continue
			}
			var m struct{ To, Body string }
			if json.Unmarshal([]byte(partial), &m) == nil {
				o.mu.Lock()
				if ch := o.waiting[m.To]; ch != nil {
					ch <- m.Body
					delete(o.waiting, m.To)
				}
				o.mu.Unlock()
			}
			partial = ""
		}
	}()
	return o
}

func (o *cbOutbox) expect(to string) <-chan string {
	ch := make(chan string, 1)
	o.mu.Lock()
	o.waiting[to] = ch
	o.mu.Unlock()
	return ch
}

func (o *cbOutbox) stop() { close(o.done) }
