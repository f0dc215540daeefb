package caddymodule

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// phone_file: a CSV file of `identity,phone` lines, read at provision and
// read again when it changes (phonefile_refresh.go), without a reload.
//
// A row that can't be parsed or whose number the policy refuses is skipped
// and logged with its line; the rest is served. An identity named by a
// skipped row is held refused rather than dropped: the operator meant it
// to have a number from the file, so it must not fall through to
// enrolment, where whoever holds its session could register any number.

// DefaultPhoneFileRefresh is how often phone_file is looked at for changes
// when phone_file_refresh is unset.
const DefaultPhoneFileRefresh = 10 * time.Second

// maxPhoneFileRefresh bounds phone_file_refresh: longer, and a removed
// number would keep receiving codes for longer than anyone would expect.
const maxPhoneFileRefresh = time.Hour

// errPhoneFileRow is what an identity named by a skipped row gets: a
// refusal, so every page treats it as a number that can't receive codes
// and sends the user to an administrator.
var errPhoneFileRow = &otp.PhoneRefusal{Reason: "phone_file"}

// phoneRow is one identity's entry: its number, or why its row was skipped.
type phoneRow struct {
	phone otp.Phone
	err   error
}

// skippedRow is a row left out of a reading, for the log: never the number
// in full (masked is its mask, when it parsed at all).
type skippedRow struct {
	line     int
	identity string
	masked   string
	err      error
}

// phoneTable is one reading of the file.
type phoneTable struct {
	rows    map[string]phoneRow
	served  int // identities with a number
	lines   int // rows that were neither blank nor comments
	skipped []skippedRow
	// info is the file as it was read (inode, size, modification time);
	// nil forces the next look to read it again.
	info os.FileInfo
}

// phoneFile is the table in use and when the file may next be looked at.
// Lookups read the table through an atomic pointer and never wait; only
// the request that finds the interval over looks at the file.
type phoneFile struct {
	path    string
	policy  *otp.PhonePolicy
	refresh time.Duration

	table     atomic.Pointer[phoneTable]
	nextCheck atomic.Int64 // Unix nanoseconds of the handler's clock
	checking  sync.Mutex   // taken with TryLock: one look at a time
}

// lookup is identity's row in the table in use; listed is false when the
// file does not name it.
func (f *phoneFile) lookup(identity string) (phone otp.Phone, listed bool, err error) {
	row, listed := f.table.Load().rows[identity]
	return row.phone, listed, row.err
}

var errPhoneFileChanging = errors.New("it changed while it was being read")

// readPhoneFile reads one table from path. Blank lines and lines starting
// with # are left out; a bad row is skipped (see skippedRow). The error is
// only for a file that can't be read; errPhoneFileChanging comes with the
// table, for a file written to while it was read (the table may then hold
// half of it).
func readPhoneFile(path string, policy *otp.PhonePolicy) (*phoneTable, error) {
	data, info, err := readStable(path)
	if err != nil && !errors.Is(err, errPhoneFileChanging) {
		return nil, err
	}
	t := &phoneTable{rows: make(map[string]phoneRow), info: info}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		t.addLine(line, sc.Text(), policy)
	}
	if scanErr := sc.Err(); scanErr != nil {
		return nil, fmt.Errorf("phone_file %s: %w", path, scanErr)
	}
	for _, row := range t.rows {
		if row.err == nil {
			t.served++
		}
	}
	return t, err
}

// addLine adds one line of the file to the table, or skips it.
func (t *phoneTable) addLine(line int, text string, policy *otp.PhonePolicy) {
	// Excel's "CSV UTF-8" starts the file with a byte-order mark.
	text = strings.TrimSpace(strings.TrimPrefix(text, "\ufeff"))
	if text == "" || strings.HasPrefix(text, "#") {
		return
	}
	t.lines++
	identity, raw, ok := strings.Cut(text, ",")
	identity, raw = strings.TrimSpace(identity), strings.TrimSpace(raw)
	if !ok {
		// The whole line would be the identity, and it may hold a number.
		identity = ""
	}
	skip := func(masked string, err error) {
		t.skipped = append(t.skipped, skippedRow{line: line, identity: loggableIdentity(identity, policy), masked: masked, err: err})
		if identity != "" {
			t.rows[identity] = phoneRow{err: errPhoneFileRow}
		}
	}
	if identity == "" || raw == "" {
		skip("", errors.New("expected `identity,phone`"))
		return
	}
	if _, dup := t.rows[identity]; dup {
		// Which row is right can't be told: neither number is used.
		skip("", errors.New("the identity is listed twice"))
		return
	}
	phone, err := policy.Check(raw)
	if err != nil {
		var refusal *otp.PhoneRefusal
		errors.As(err, &refusal)
		skip(refusal.Masked, err)
		return
	}
	t.rows[identity] = phoneRow{phone: phone}
}

// loggableIdentity is identity as a log may show it: masked when it reads
// as a phone number (the columns swapped, say), since logs show numbers
// only masked.
func loggableIdentity(identity string, policy *otp.PhonePolicy) string {
	if strings.ContainsFunc(identity, func(r rune) bool { return r >= '0' && r <= '9' }) {
		p, err := policy.Check(identity)
		var refusal *otp.PhoneRefusal
		switch {
		case err == nil:
			return p.Masked
		case errors.As(err, &refusal) && refusal.Masked != "":
			return refusal.Masked
		}
	}
	return identity
}

// readStable reads the whole file and what it was (from the open file, so
// a rename into place after the open is seen at the next look), and
// reports errPhoneFileChanging when the path no longer names the same,
// unchanged file once read: a write in progress.
func readStable(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("phone_file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("phone_file: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("phone_file %s: %w", path, err)
	}
	if after, err := os.Stat(path); err != nil || !sameFileState(info, after) || int64(len(data)) != info.Size() {
		return data, nil, fmt.Errorf("phone_file %s: %w", path, errPhoneFileChanging)
	}
	return data, info, nil
}

// sameFileState reports whether two looks at a file found the same file
// (inode) with the same size and modification time.
func sameFileState(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
