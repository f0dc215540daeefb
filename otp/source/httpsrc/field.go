package httpsrc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// readField finds the number at path in a JSON body. A key that is
// missing, or null on the way or at the end, is no number; a value of the
// wrong kind is an error that names the kind, never the value.
func readField(body []byte, path []string) (string, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false, errors.New("the answer is not JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", false, errors.New("the answer holds more than one JSON value")
	}
	for i, key := range path {
		switch node := v.(type) {
		case nil:
			return "", false, nil
		case map[string]any:
			v = node[key]
		case []any:
			n, err := strconv.Atoi(key)
			if err != nil || n < 0 {
				return "", false, fmt.Errorf("%s is a list, and %q is no index", strings.Join(path[:i], "."), key)
			}
			if n >= len(node) {
				return "", false, nil
			}
			v = node[n]
		default:
			return "", false, fmt.Errorf("%s is %s, not an object or a list", where(path[:i]), kind(v))
		}
	}
	switch v := v.(type) {
	case nil:
		return "", false, nil
	case string:
		raw := strings.TrimSpace(v)
		return raw, raw != "", nil
	}
	// A number in JSON has lost its leading 0 or +; the rest is no number.
	return "", false, fmt.Errorf("%s is %s, expected a string", strings.Join(path, "."), kind(v))
}

func where(path []string) string {
	if len(path) == 0 {
		return "the answer"
	}
	return strings.Join(path, ".")
}

func kind(v any) string {
	switch v.(type) {
	case json.Number:
		return "a number"
	case bool:
		return "true or false"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	}
	return fmt.Sprintf("%T", v)
}
