package pages

import (
	"strings"
	"sync"
)

// Messages is Catalog(lang, args...) for a page about to render: the map
// is shared with other pages given the same language and arguments, so
// the caller must not change it (templates can't). A page shown again to
// the same number, a refused send's above all, builds no map (issue 17).
// Up to messagesMemoSize filled catalogs are kept; when full, an arbitrary
// one makes room.
func Messages(lang string, args ...string) map[string]string {
	if _, ok := catalogs[lang]; !ok {
		lang = "en"
	}
	key := lang + "\x00" + strings.Join(args, "\x00")
	messagesMemo.mu.RLock()
	m, ok := messagesMemo.maps[key]
	messagesMemo.mu.RUnlock()
	if ok {
		return m
	}
	m = Catalog(lang, args...)
	messagesMemo.mu.Lock()
	if len(messagesMemo.maps) >= messagesMemoSize {
		for k := range messagesMemo.maps { // a map's range starts at random
			delete(messagesMemo.maps, k)
			break
		}
	}
	messagesMemo.maps[key] = m
	messagesMemo.mu.Unlock()
	return m
}

// messagesMemoSize bounds the shared catalogs: about 6 KB each.
const messagesMemoSize = 256

var messagesMemo = struct {
	mu   sync.RWMutex
	maps map[string]map[string]string
}{maps: map[string]map[string]string{}}
