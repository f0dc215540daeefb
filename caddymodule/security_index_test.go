package caddymodule

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestSecurityIndexCoversEveryRule reads docs/SECURITY-TESTS.md and fails if
// a rule has no row, if a row does not name its TestSecurityRuleNN test, if
// this file lacks or doubles a rule's test, or if the page names a test or
// function that does not exist in the repository.
func TestSecurityIndexCoversEveryRule(t *testing.T) {
	t.Parallel()
	// Every rule has its test: 26-37 (the boundaries of a real
	// deployment), held as each gained one, are settled now. A rule added
	// to SECURITY.md past settled may wait for its row until it has a test.
	const rules, settled = 37, 37
	doc, err := os.ReadFile("../docs/SECURITY-TESTS.md")
	if err != nil {
		t.Fatal(err)
	}

	// Every function declared in the repository, by name, with the files
	// (relative to the root) that declare it.
	decls := map[string][]string{}
	var unparsed []string
	fset := token.NewFileSet()
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != ".." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel("..", path)
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			unparsed = append(unparsed, rel)
			return nil
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok {
				decls[fn.Name.Name] = append(decls[fn.Name.Name], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The rule tests live in caddymodule/security*_test.go.
	isRuleFile := func(f string) bool {
		return strings.HasPrefix(f, "caddymodule/security") && strings.HasSuffix(f, "_test.go")
	}

	// The rule tests.
	ruleRE := regexp.MustCompile(`^TestSecurityRule(\d\d)_[A-Za-z0-9]+$`)
	byRule := map[int][]string{}
	for name, files := range decls {
		if m := ruleRE.FindStringSubmatch(name); m != nil && slices.ContainsFunc(files, isRuleFile) {
			n, _ := strconv.Atoi(m[1])
			byRule[n] = append(byRule[n], name)
		} else if strings.HasPrefix(name, "TestSecurityRule") {
			t.Errorf("%s: not of the form TestSecurityRuleNN_ShortName in caddymodule/security*_test.go", name)
		}
	}
	for n := range byRule {
		if n < 1 || n > rules {
			t.Errorf("%v: there is no rule %d", byRule[n], n)
		}
	}

	// The table: one row per rule, its first cell the rule's number.
	rowRE := regexp.MustCompile(`^\|\s*(\d+)\s*\|`)
	rows := map[int]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		m := rowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if _, dup := rows[n]; dup {
			t.Errorf("rule %d has two rows", n)
		}
		rows[n] = line
	}
	for n := 1; n <= rules; n++ {
		row, ok := rows[n]
		if n > settled && !ok && len(byRule[n]) == 0 {
			continue
		}
		switch {
		case !ok:
			t.Errorf("rule %d has no row in docs/SECURITY-TESTS.md", n)
		case len(byRule[n]) != 1:
			t.Errorf("rule %d has %d tests in caddymodule/security*_test.go (%v), want exactly one", n, len(byRule[n]), byRule[n])
		case !strings.Contains(row, "`"+byRule[n][0]+"`"):
			t.Errorf("the row of rule %d does not name `%s`:\n%s", n, byRule[n][0], row)
		}
	}

	// Every name the page puts in backticks as a test or as file:function
	// exists.
	testRE := regexp.MustCompile("^(Test|Fuzz|Benchmark)[A-Za-z0-9_]+$")
	fileFuncRE := regexp.MustCompile(`^([A-Za-z0-9_./-]+\.go):([A-Za-z_][A-Za-z0-9_]*)$`)
	named := 0
	prose := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(doc), "")
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(prose, -1) {
		span := m[1]
		switch {
		case testRE.MatchString(span):
			named++
			found := false
			for _, f := range decls[span] {
				found = found || strings.HasSuffix(f, "_test.go")
			}
			if !found {
				t.Errorf("docs/SECURITY-TESTS.md names %s, which no _test.go file declares (unparsed files: %v)", span, unparsed)
			}
		case fileFuncRE.MatchString(span):
			named++
			fm := fileFuncRE.FindStringSubmatch(span)
			if !secContainsAny(decls[fm[2]], []string{fm[1]}) {
				t.Errorf("docs/SECURITY-TESTS.md names %s, but %s declares no %s", span, fm[1], fm[2])
			}
		}
	}
	if named < settled {
		t.Errorf("docs/SECURITY-TESTS.md names only %d tests", named)
	}
}
