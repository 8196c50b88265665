package config

import (
	"strings"
	"testing"
)

// The limits of POST /v1/check: defaults, and what is refused.
func TestCheckLimits(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Limits; l.CheckMaxCost != 10_000_000 || l.CheckRate != 5 || l.CheckBurst != 20 {
		t.Errorf("defaults: check_max_cost %d, check_rate %g, check_burst %d", l.CheckMaxCost, l.CheckRate, l.CheckBurst)
	}
	c, err = Parse([]byte("limits: {check_max_cost: 500, check_rate: 0.5, check_burst: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Limits; l.CheckMaxCost != 500 || l.CheckRate != 0.5 || l.CheckBurst != 2 {
		t.Errorf("set: %+v", l)
	}
	for _, bad := range []string{"limits: {check_rate: -1}\n", "limits: {check_burst: -1}\n"} {
		field, _, _ := strings.Cut(bad[len("limits: {"):], ":")
		if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "limits."+field+": must be positive") {
			t.Errorf("%q: %v, want an error naming the field", bad, err)
		}
	}
	// An unsigned count, as predicate_max_cost: YAML refuses a negative one.
	if _, err := Parse([]byte("limits: {check_max_cost: -1}\n")); err == nil {
		t.Error("check_max_cost: -1 accepted")
	}
}
