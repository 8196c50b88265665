package predicate

import (
	"fmt"
	"sync"
	"testing"
)

// One Predicate, many goroutines, each with its own Input: run with -race.
func TestConcurrentMatch(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		`source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`,
		`body.items.exists(i, i.qty == 2) && key.startsWith("eu.")`, // with the run-time cost limit
	} {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		const goroutines, rounds = 8, 200
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() { // waited for by wg.Wait below
				defer wg.Done()
				var in Input
				for i := 0; i < rounds; i++ {
					m := order()
					want := i%2 == 0
					if !want {
						m.Body = []byte(fmt.Sprintf(`{"amount":%d,"items":[{"qty":%d}]}`, 50+i%40, 3+i))
						m.Key = "us.order"
					}
					in.Reset(m)
					got, err := p.Match(&in)
					if got != want || err != nil {
						errs <- fmt.Errorf("%s, round %d: got %v, %v; want %v", src, i, got, err, want)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// Compile is called from many request goroutines at once.
func TestConcurrentCompile(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() { // waited for by wg.Wait below
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := Compile(fmt.Sprintf(`key == "k%d" && body.n > %d`, i, g), Limits{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
