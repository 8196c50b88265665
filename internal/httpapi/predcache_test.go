package httpapi

import (
	"fmt"
	"testing"

	"github.com/streamux/streamux/internal/predicate"
)

func TestPredicateCache(t *testing.T) {
	c := newPredicateCache(predicate.Limits{})
	a, err := c.compile(`key == "a"`)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := c.compile(`key == "a"`); b != a {
		t.Error("the same text compiled twice")
	}
	if _, err := c.compile(`key ==`); err == nil {
		t.Fatal("a bad predicate compiled")
	}
	if _, err := c.compile(`key ==`); err == nil || len(c.m) != 1 {
		t.Fatalf("a bad predicate was kept: %v, %d cached", err, len(c.m))
	}
	for i := range maxCachedPredicates + 10 {
		if _, err := c.compile(fmt.Sprintf(`key == "k%d"`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > maxCachedPredicates {
		t.Fatalf("%d cached, at most %d", len(c.m), maxCachedPredicates)
	}
}
