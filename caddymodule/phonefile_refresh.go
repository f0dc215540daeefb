package caddymodule

import (
	"cmp"
	"errors"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// Reading phone_file again when it changes. The file is looked at lazily,
// by the lookup that finds phone_file_refresh over on the handler's clock:
// no goroutine to stop with the config, the same on every OS, and tests
// move the clock instead of sleeping.
//
// A reading replaces the table only when it is believable. These keep the
// last good table and warn (again at each look until the file is fixed):
//   - a file that can't be opened or read whole (removed, a directory);
//   - a file written to while it was read (an in-place write in progress);
//   - an empty file, where the last reading had rows: a truncation before
//     the write (a file meant to be empty holds a comment line);
//   - a file with rows none of which could be used, where the last reading
//     had some: half a write, or the wrong file.
// Editing by writing a new file and renaming it into place is atomic and
// never needs any of these.

// provisionPhoneFile reads phone_file at start. A file that can't be read
// fails the load; bad rows are skipped and logged, as at every later
// reading, so that a row that passed a reread never stops a restart.
func (h *Handler) provisionPhoneFile() error {
	if h.PhoneFile == "" {
		return nil
	}
	t, err := readPhoneFile(h.PhoneFile, h.policy)
	if err != nil && !errors.Is(err, errPhoneFileChanging) {
		return err
	}
	// Read while being written: t has no file state, so the first look
	// reads the file again.
	f := &phoneFile{path: h.PhoneFile, policy: h.policy, refresh: cmp.Or(time.Duration(h.PhoneFileRefresh), DefaultPhoneFileRefresh)}
	f.table.Store(t)
	f.nextCheck.Store(h.clock.Now().Add(f.refresh).UnixNano())
	h.phoneFile = f
	h.logSkippedRows(f, t)
	return nil
}

// filePhone is identity's row in phone_file: listed is false when the file
// does not name it (or there is no phone_file); err is set when its row
// was skipped. The file is looked at first when phone_file_refresh is over.
func (h *Handler) filePhone(identity string) (phone otp.Phone, listed bool, err error) {
	f := h.phoneFile
	if f == nil {
		return otp.Phone{}, false, nil
	}
	h.lookAtPhoneFile(f)
	return f.lookup(identity)
}

// lookAtPhoneFile reads the file again when the interval is over and the
// file is not the one last read (inode, size, modification time). Other
// lookups meanwhile go on with the table in use.
func (h *Handler) lookAtPhoneFile(f *phoneFile) {
	now := h.clock.Now().UnixNano()
	if now < f.nextCheck.Load() || !f.checking.TryLock() {
		return
	}
	defer f.checking.Unlock()
	if now < f.nextCheck.Load() {
		return // another lookup has just looked
	}
	f.nextCheck.Store(now + int64(f.refresh))
	old := f.table.Load()
	if info, err := os.Stat(f.path); err == nil && sameFileState(old.info, info) {
		return
	}
	h.rereadPhoneFile(f, old)
}

// rereadPhoneFile reads the file and puts the new table in use, unless
// the reading is not to be believed (see above).
func (h *Handler) rereadPhoneFile(f *phoneFile, old *phoneTable) {
	t, err := readPhoneFile(f.path, f.policy)
	switch {
	case err != nil:
		h.keepPhoneTable(f, old, "the file can't be read whole", zap.Error(err))
	case t.lines == 0 && t.info.Size() == 0 && old.lines > 0:
		h.keepPhoneTable(f, old, "the file is empty, as it is in the middle of a write; a file meant to have no rows holds a comment line")
	case t.lines > 0 && t.served == 0 && old.served > 0:
		h.keepPhoneTable(f, old, "none of its rows could be used", zap.Int("skipped", len(t.skipped)))
		h.logSkippedRows(f, t)
	default:
		f.table.Store(t)
		h.logSkippedRows(f, t)
		h.audit(zapcore.InfoLevel, "phone_file read again after it changed", "phone_file_reread",
			zap.String("file", f.path), zap.String("result", "replaced"), zap.Int("served", t.served), zap.Int("skipped", len(t.skipped)))
	}
}

// keepPhoneTable warns that a reading was not put in use, and why.
func (h *Handler) keepPhoneTable(f *phoneFile, old *phoneTable, why string, fields ...zap.Field) {
	fields = append([]zap.Field{zap.String("file", f.path), zap.String("result", "kept_last"), zap.String("reason", why),
		zap.Int("served", old.served)}, fields...)
	h.audit(zapcore.WarnLevel, "phone_file changed but was not read: serving the last reading", "phone_file_reread", fields...)
}

// logSkippedRows warns of each row a reading left out, with its file and
// line, the identity and the number's mask (never the number).
func (h *Handler) logSkippedRows(f *phoneFile, t *phoneTable) {
	for _, row := range t.skipped {
		fields := []zap.Field{zap.String("file", f.path), zap.Int("line", row.line), zap.String("reason", row.err.Error())}
		if row.identity != "" {
			fields = append(fields, zap.String("identity", row.identity))
		}
		if row.masked != "" {
			fields = append(fields, zap.String("phone", row.masked))
		}
		h.audit(zapcore.WarnLevel, "phone_file row skipped: its identity gets no number until it is fixed", "phone_file_row_skipped", fields...)
	}
}
