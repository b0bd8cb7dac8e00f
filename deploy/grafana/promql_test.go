package grafana_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// selector is a metric a PromQL expression reads.
type selector struct {
	name     string
	matchers string // the text between the braces, if any
	fn       string // the function whose parentheses directly enclose it ("" for none or plain grouping)
}

// promqlFunctions are the functions and aggregations Prometheus 2.42 knows (the
// version TIP's tests scrape with), so a newer function fails here too.
var promqlFunctions = wordSet(`abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time
	ceil changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
	days_in_month deg delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate
	label_join label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month pi
	predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort
	sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year
	start end`)

// promqlAggregations may be followed by a by/without clause before their parentheses.
var promqlAggregations = wordSet(`sum min max avg group stddev stdvar count count_values bottomk topk quantile`)

// labelClauses are followed by a parenthesised list of label names.
var labelClauses = wordSet(`by without on ignoring group_left group_right`)

// promqlKeywords are the other words that are not metric names.
var promqlKeywords = wordSet(`and or unless bool offset atan2 inf nan`)

func wordSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// selectors lists the metrics an expression reads. It is a scanner, not a
// parser: enough to find every metric name (an identifier that is no function,
// aggregation, keyword, label list or string), with its matchers and the
// function applied to it. A selector without a metric name, an unknown
// function or unbalanced brackets are errors.
func selectors(expr string) ([]selector, error) {
	var out []selector
	var stack []string // the function of each open parenthesis
	pending := ""      // a function or aggregation waiting for its parenthesis
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i, pending = j, ""
		case c == '{':
			return nil, fmt.Errorf("a selector without a metric name at %q: name the metric", s[i:])
		case c == '[':
			j, err := skipGroup(s, i, ']')
			if err != nil {
				return nil, err
			}
			i, pending = j, ""
		case c == '(':
			stack = append(stack, pending)
			i, pending = i+1, ""
		case c == ')':
			if len(stack) == 0 {
				return nil, fmt.Errorf("unbalanced ) at %q", s[i:])
			}
			stack = stack[:len(stack)-1]
			i, pending = i+1, ""
		case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]):
			j := i + 1
			for j < len(s) && (isWord(s[j]) || s[j] == '.' ||
				(s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E') && !strings.HasPrefix(strings.ToLower(s[i:]), "0x")) {
				j++
			}
			i, pending = j, ""
		case isWordStart(c):
			j := i + 1
			for j < len(s) && (isWord(s[j]) || s[j] == ':') {
				j++
			}
			word := s[i:j]
			next := j
			for next < len(s) && strings.ContainsRune(" \t\r\n", rune(s[next])) {
				next++
			}
			lower := strings.ToLower(word)
			switch {
			case labelClauses[lower]:
				// The clause leaves pending alone: sum by (le) (...) is still sum's.
				i = j
				if next < len(s) && s[next] == '(' {
					end, err := skipGroup(s, next, ')')
					if err != nil {
						return nil, err
					}
					i = end
				}
			case promqlKeywords[lower]:
				i, pending = j, ""
			case next < len(s) && s[next] == '(':
				if !promqlFunctions[word] && !promqlAggregations[word] {
					return nil, fmt.Errorf("unknown function %s", word)
				}
				i, pending = j, word
			case promqlAggregations[word]:
				i, pending = j, word
			default:
				sel := selector{name: word}
				if len(stack) > 0 {
					sel.fn = stack[len(stack)-1]
				}
				i = j
				if next < len(s) && s[next] == '{' {
					end, err := skipGroup(s, next, '}')
					if err != nil {
						return nil, err
					}
					sel.matchers = strings.TrimSpace(s[next+1 : end-1])
					i = end
				}
				out = append(out, sel)
				pending = ""
			}
		default: // operators, commas, @
			i, pending = i+1, ""
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("%d unclosed (", len(stack))
	}
	return out, nil
}

// skipString returns the index after the string literal that starts at i.
func skipString(s string, i int) (int, error) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %q", s[i:])
}

// skipGroup returns the index after the bracket closing the one at i, stepping
// over strings inside.
func skipGroup(s string, i int, closer byte) (int, error) {
	for j := i + 1; j < len(s); {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end
		case closer:
			return j + 1, nil
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unclosed %c at %q", s[i], s[i:])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isWordStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
func isWord(c byte) bool { return isWordStart(c) || isDigit(c) }

// TestSelectors: the scanner finds every metric, with its matchers and the
// function applied to it (shown as name/fn{matchers}), and refuses what it
// cannot check.
func TestSelectors(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
		err  string
	}{
		{expr: `tip_source_up`, want: []string{`tip_source_up/`}},
		{expr: `sum by (le, task_queue) (rate(x_bucket{a="}[by(", b!~'x'}[5m]))`, want: []string{`x_bucket/rate{a="}[by(", b!~'x'}`}},
		{expr: `histogram_quantile(0.99, sum(rate(m_bucket[1m])) by (le))`, want: []string{`m_bucket/rate`}},
		{expr: `time() - max by (source) (tip_a{source=~"$source"})`, want: []string{`tip_a/max{source=~"$source"}`}},
		{expr: `x / on(job) group_left(instance) y`, want: []string{`x/`, `y/`}},
		{expr: `a and b unless c or d AND e`, want: []string{`a/`, `b/`, `c/`, `d/`, `e/`}},
		{expr: `1e3 * foo offset 5m > bool 1.5e-3`, want: []string{`foo/`}},
		{expr: `0x1e+ bar`, want: []string{`bar/`}},
		{expr: `label_replace(up, "dst", "$1", "src", "(.*)")`, want: []string{`up/label_replace`}},
		{expr: `max_over_time(rate(x_total[5m])[1h:1m])`, want: []string{`x_total/rate`}},
		{expr: "sum without (instance) (y) # by (z) w", want: []string{`y/sum`}},
		{expr: `count_values("v", z) @ end()`, want: []string{`z/count_values`}},
		{expr: `topk(3, sum by (source) (tip_x:rate5m))`, want: []string{`tip_x:rate5m/sum`}},
		{expr: `{__name__="x"}`, err: `without a metric name`},
		{expr: `sum(x`, err: `unclosed`},
		{expr: `sum(x))`, err: `unbalanced`},
		{expr: `histogram_quantil(0.9, x)`, err: `unknown function histogram_quantil`},
		{expr: `rate(x{a="b}[5m])`, err: `unterminated string`},
	} {
		sels, err := selectors(c.expr)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("selectors(%s): err %v, want %q", c.expr, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("selectors(%s): %v", c.expr, err)
			continue
		}
		var got []string
		for _, s := range sels {
			g := s.name + "/" + s.fn
			if s.matchers != "" {
				g += "{" + s.matchers + "}"
			}
			got = append(got, g)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("selectors(%s) = %q, want %q", c.expr, got, c.want)
		}
	}
}
