package sql

import (
	"errors"
	"fmt"
	"strings"
)

// placeholder is how each driver writes the query's one parameter.
var placeholder = map[string]string{
	Postgres: "$1",
	MySQL:    "?",
	SQLite:   "?",
}

// checkQuery makes sure query is one SELECT that takes the identity as its
// only parameter, written the driver's way: the identity travels as a
// parameter, never as part of the text. It reads the query as the server
// will, skipping quoted strings, quoted names and comments, so a "?" inside
// a string is not counted and a placeholder can't hide in a comment.
func checkQuery(driver, query string) error {
	want := placeholder[driver]
	q := strings.TrimSpace(query)
	if q == "" {
		return fmt.Errorf("query is required: a SELECT of the phone number with %s for the identity", want)
	}
	if strings.Contains(q, "{identity}") {
		return fmt.Errorf("query %q: write %s where the identity goes; it is passed as a parameter, never spliced into the text", query, want)
	}
	first := strings.ToUpper(strings.TrimLeft(q, "( \t\r\n"))
	if !strings.HasPrefix(first, "SELECT") && !strings.HasPrefix(first, "WITH") {
		return fmt.Errorf("query %q: expected a SELECT statement", query)
	}
	found, err := scanPlaceholders(driver, q)
	if err != nil {
		return fmt.Errorf("query %q: %w", query, err)
	}
	if len(found) != 1 || found[0] != want {
		return fmt.Errorf("query %q: expected exactly one parameter, written %s, for the identity; found %s", query, want, describe(found))
	}
	return nil
}

func describe(found []string) string {
	if len(found) == 0 {
		return "none"
	}
	return strings.Join(found, ", ")
}

// scanPlaceholders lists the distinct parameters of one statement: $n for
// postgres, each ? for the others (which have no numbering), and any named
// or numbered form SQLite or MySQL would also take, so that the caller can
// refuse it.
func scanPlaceholders(driver, q string) ([]string, error) {
	var found []string
	seen := map[string]bool{}
	add := func(p string, distinct bool) {
		if !distinct || !seen[p] {
			found = append(found, p)
			seen[p] = true
		}
	}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || (c == '`' && driver != Postgres):
			end, err := skipQuoted(driver, q, i)
			if err != nil {
				return nil, err
			}
			i = end
		case strings.HasPrefix(q[i:], "--") || (c == '#' && driver == MySQL):
			if nl := strings.IndexByte(q[i:], '\n'); nl >= 0 {
				i += nl + 1
			} else {
				i = len(q)
			}
		case strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("a comment is not closed")
			}
			i += 2 + end + 2
		case c == ';':
			if rest := strings.TrimSpace(q[i+1:]); rest != "" {
				return nil, errors.New("expected one statement; found text after ';'")
			}
			i = len(q)
		case c == '$' && driver == Postgres:
			p, end, err := dollar(q, i)
			if err != nil {
				return nil, err
			}
			if p != "" {
				add(p, true)
			}
			i = end
		case c == '?' && driver != Postgres:
			// SQLite also takes ?NNN: a numbered parameter is refused with
			// the rest, since the identity is bound once, by position.
			end := i + 1
			for end < len(q) && isDigit(q[end]) {
				end++
			}
			add(q[i:end], false)
			i = end
		case (c == ':' || c == '@' || c == '$') && driver == SQLite && i+1 < len(q) && isNameStart(q[i+1]):
			end := i + 1
			for end < len(q) && isNameChar(q[end]) {
				end++
			}
			add(q[i:end], true)
			i = end
		default:
			i++
		}
	}
	return found, nil
}

// skipQuoted returns the index just past the quoted string or name that
// starts at q[i]. A doubled quote stays inside; a backslash escapes the
// next character in MySQL's strings and in PostgreSQL's E'...' strings.
func skipQuoted(driver, q string, i int) (int, error) {
	quote := q[i]
	backslash := quote != '`' && driver == MySQL ||
		quote == '\'' && driver == Postgres && i > 0 && q[i-1]|0x20 == 'e' && (i == 1 || !isNameChar(q[i-2]))
	for j := i + 1; j < len(q); j++ {
		switch {
		case q[j] == '\\' && backslash:
			j++
		case q[j] == quote && j+1 < len(q) && q[j+1] == quote:
			j++
		case q[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("a %c quote is not closed", quote)
}

// dollar reads what starts with '$' at q[i] in PostgreSQL: a parameter
// ($1), a dollar-quoted string ($$...$$ or $tag$...$tag$), which it skips,
// or a '$' inside a name. It returns the parameter, if any, and the index
// past what it read.
func dollar(q string, i int) (param string, end int, err error) {
	j := i + 1
	if j < len(q) && isDigit(q[j]) {
		for j < len(q) && isDigit(q[j]) {
			j++
		}
		return q[i:j], j, nil
	}
	if i > 0 && isNameChar(q[i-1]) {
		return "", i + 1, nil // a '$' within a name, such as a$b
	}
	for j < len(q) && isNameChar(q[j]) {
		j++
	}
	if j >= len(q) || q[j] != '$' {
		return "", 0, errors.New("a '$' is neither a parameter nor a dollar quote")
	}
	tag := q[i : j+1]
	closing := strings.Index(q[j+1:], tag)
	if closing < 0 {
		return "", 0, fmt.Errorf("a %s quote is not closed", tag)
	}
	return "", j + 1 + closing + len(tag), nil
}

func isDigit(c byte) bool     { return c >= '0' && c <= '9' }
func isNameStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isNameChar(c byte) bool  { return isNameStart(c) || isDigit(c) }
