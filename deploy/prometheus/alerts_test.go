package prometheus_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// agreedAlerts are the alerts of issue 22's metrics contract, group tip.
var agreedAlerts = []string{"TIPAllSourcesFailing", "TIPCoreNotRunning", "TIPFluxChecksLate", "TIPNoWorkerPolling", "TIPSourceDead", "TIPSpamCollectorSilent"}

// TestAlertsAreTheAgreedOnes: group tip holds the agreed alerts, each with a
// for, a severity an Alertmanager can route on, and the three annotations an
// operator reads.
func TestAlertsAreTheAgreedOnes(t *testing.T) {
	f := readRules(t, "rules.yaml")
	if len(f.Groups) != 1 || f.Groups[0].Name != "tip" {
		t.Fatalf("want one group named tip, got %d groups", len(f.Groups))
	}
	var names []string
	for _, r := range f.Groups[0].Rules {
		if r.Alert == "" {
			continue
		}
		names = append(names, r.Alert)
		if r.For == "" {
			t.Errorf("%s: no for: one bad reading would page someone", r.Alert)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if len(tipCommands(r.Annotations["runbook"])) == 0 {
			t.Errorf("%s: its runbook names no tip command to run", r.Alert)
		}
	}
	sort.Strings(names)
	if !slices.Equal(names, agreedAlerts) {
		t.Errorf("alerts %q, want the agreed %q", names, agreedAlerts)
	}
}

type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertIsTested: rules_test.yaml tests rules.yaml, and for every
// alert has a case where it fires, with its severity and every annotation
// expected, and a case where it must not.
func TestEveryAlertIsTested(t *testing.T) {
	data, err := os.ReadFile("rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rt ruleTests
	if err := yaml.Unmarshal(data, &rt); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rt.RuleFiles, []string{"rules.yaml"}) {
		t.Errorf("rule_files %q, want [rules.yaml]", rt.RuleFiles)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	severity := map[string]string{}
	for _, r := range readRules(t, "rules.yaml").Groups[0].Rules {
		severity[r.Alert] = r.Labels["severity"]
	}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) == 0 {
				quiet[a.Alertname]++
			}
			for _, e := range a.ExpAlerts {
				fires[a.Alertname]++
				if e.ExpLabels["severity"] != severity[a.Alertname] {
					t.Errorf("%s at %s: expects severity %q, the rule's is %q", a.Alertname, a.EvalTime, e.ExpLabels["severity"], severity[a.Alertname])
				}
				for _, k := range []string{"summary", "description", "runbook"} {
					if e.ExpAnnotations[k] == "" {
						t.Errorf("%s at %s: no expected %s: promtool would compare it with nothing", a.Alertname, a.EvalTime, k)
					}
				}
			}
		}
	}
	for _, name := range agreedAlerts {
		if fires[name] == 0 || quiet[name] == 0 {
			t.Errorf("%s: %d cases where it fires and %d where it must not: want both", name, fires[name], quiet[name])
		}
	}
}

// tipCommand matches a `tip ...` command quoted in an annotation; a template
// action in it (the source's name) stands for an argument.
var (
	tipCommand     = regexp.MustCompile("`(tip [^`]*)`")
	templateAction = regexp.MustCompile(`\{\{.*?\}\}`)
)

func tipCommands(text string) [][]string {
	var out [][]string
	for _, m := range tipCommand.FindAllStringSubmatch(text, -1) {
		out = append(out, strings.Fields(templateAction.ReplaceAllString(m[1], "NAME"))[1:])
	}
	return out
}

// TestRunbookCommands: every tip command an alert's annotations quote is one
// of tip's commands, with flags it knows, so an operator following a runbook
// never meets "unknown command".
func TestRunbookCommands(t *testing.T) {
	tip := buildTip(t)
	for _, r := range readRules(t, "rules.yaml").Groups[0].Rules {
		for key, text := range r.Annotations {
			for _, args := range tipCommands(text) {
				if err := checkTipArgs(tip, args); err != nil {
					t.Errorf("%s %s: %v", r.Alert, key, err)
				}
			}
		}
	}
	// The check itself: it refuses what is not a command of tip.
	for _, args := range [][]string{{"core", "strat"}, {"blacklists", "refresh", "--sources", "x"}, {"spam", "imap", "pol", "NAME"}, {"sauces"}} {
		if checkTipArgs(tip, args) == nil {
			t.Errorf("tip %s passed the check", strings.Join(args, " "))
		}
	}
}

func buildTip(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tip")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tip-project/tip/cmd/tip").CombinedOutput(); err != nil {
		t.Fatalf("build tip: %v\n%s", err, out)
	}
	return bin
}

// checkTipArgs runs `tip ARGS --help`: an unknown flag fails it, and its usage
// line must name a command (not a group of them) whose path starts ARGS.
func checkTipArgs(tip string, args []string) error {
	cmd := exec.Command(tip, append(slices.Clone(args), "--help")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("tip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	_, usage, _ := strings.Cut(string(out), "Usage:\n")
	usage, _, _ = strings.Cut(usage, "\n")
	words := strings.Fields(usage)
	var path []string
	for _, w := range words[min(1, len(words)):] {
		if !regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(w) {
			break
		}
		path = append(path, w)
	}
	if len(words) == 0 || words[0] != "tip" || strings.Contains(usage, "[command]") || len(path) == 0 ||
		len(path) > len(args) || !slices.Equal(path, args[:len(path)]) {
		return fmt.Errorf("tip %s: not a command of tip (its help's usage is %q)", strings.Join(args, " "), strings.TrimSpace(usage))
	}
	return nil
}
