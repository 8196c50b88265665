package auth

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedactQuery(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"where=true", "where=true"},
		{"token=s3cret", "token=REDACTED"},
		{"where=key+%3D%3D+%22a%22&token=s3cret&source=a", "where=key+%3D%3D+%22a%22&token=REDACTED&source=a"},
		{"token=a&token=b", "token=REDACTED&token=REDACTED"},
		{"tok%65n=s3cret", "tok%65n=REDACTED"},
		{"TOKEN=s3cret", "TOKEN=REDACTED"},
		{"a=1;token=s3cret", "a=1;token=REDACTED"},
		{"token=", "token=REDACTED"},
		{"token", "token"},
		{"tokens=x&xtoken=y&access=token", "tokens=x&xtoken=y&access=token"},
		{"&&token=s3cret&", "&&token=REDACTED&"},
		{"where=token%3Ds3cret", "where=token%3Ds3cret"}, // a value that merely mentions token
	} {
		if got := RedactQuery(c.in); got != c.want {
			t.Errorf("RedactQuery(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("https://user:pw@host:8080/v1/stream?where=true&token=s3cret")
	must(t, err)
	got := RedactURL(u)
	if strings.Contains(got, "s3cret") || strings.Contains(got, ":pw@") || !strings.Contains(got, "token=REDACTED") || !strings.Contains(got, "where=true") {
		t.Errorf("RedactURL = %q", got)
	}
	if u.RawQuery != "where=true&token=s3cret" {
		t.Error("RedactURL changed its argument")
	}
	if RedactURL(nil) != "" {
		t.Error("RedactURL(nil)")
	}
}

// FuzzRedactQuery: whatever the query, no value that net/url would read as the token parameter
// is left in the output, and nothing but token values changes.
func FuzzRedactQuery(f *testing.F) {
	for _, s := range []string{"token=abc", "a=1&token=abc;b", "tok%65n=x%zz", "token=%41%42", "=&=token", "token=a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := RedactQuery(raw)
		q, _ := url.ParseQuery(out)
		for _, v := range q["token"] {
			if v != Redacted && v != "" {
				t.Fatalf("RedactQuery(%q) = %q leaves token=%q", raw, out, v)
			}
		}
		orig, _ := url.ParseQuery(raw)
		if len(q["token"]) < len(orig["token"]) {
			t.Fatalf("RedactQuery(%q) = %q: %d token parameters became %d", raw, out, len(orig["token"]), len(q["token"]))
		}
		if strings.Count(out, "&")+strings.Count(out, ";") != strings.Count(raw, "&")+strings.Count(raw, ";") {
			t.Fatalf("RedactQuery(%q) = %q changed the parameters", raw, out)
		}
	})
}
