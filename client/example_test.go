package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/streamux/streamux/client"
)

// exampleServer runs a streamux server with an http source named "events", as
// `streamux serve` would with that source in its configuration.
func exampleServer() (url string, stop func()) {
	url, stop, err := serve([]string{"events"}, 0)
	if err != nil {
		log.Fatal(err)
	}
	return url, stop
}

// Subscribe to the messages that satisfy a predicate, and read them as they come. The
// subscription reconnects and resumes on its own: Next returns an error only once it is over.
func ExampleClient_Subscribe() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.New(url) // client.WithToken(key) for a server with auth
	if err != nil {
		log.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, client.Subscribe{Where: `key == "eu" && body.amount > 100`, Sources: []string{"events"}})
	if err != nil {
		log.Fatal(err) // a bad predicate, an unknown source: an *APIError
	}
	defer sub.Close()

	_, err = c.Publish(ctx, "events",
		client.Message{Key: "eu", Body: []byte(`{"amount":120.5}`)},
		client.Message{Key: "us", Body: []byte(`{"amount":300}`)},
		client.Message{Key: "eu", Body: []byte(`{"amount":99}`)},
		client.Message{Key: "eu", Body: []byte(`{"amount":150}`)})
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		ev, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Type {
		case client.TypeMessage:
			fmt.Println(ev.ID, ev.Key, string(ev.Body))
		case client.TypeGap:
			fmt.Printf("%d matching messages of %s were not delivered (%s)\n", ev.Missed, ev.Source, ev.Reason)
		}
	}
	// Output:
	// events:1 eu {"amount":120.5}
	// events:4 eu {"amount":150}
}

// A subscription can start where an earlier one stopped: LastIDs is what to resume after.
func ExampleSubscription_LastIDs() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(url)
	if err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Publish(ctx, "events", client.Message{Body: fmt.Appendf(nil, "%d", i+1)}); err != nil {
			log.Fatal(err)
		}
	}
	first, err := c.Subscribe(ctx, client.Subscribe{From: []string{"events:0"}})
	if err != nil {
		log.Fatal(err)
	}
	ev, err := first.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first read", ev.ID)
	first.Close()

	// Later, perhaps in another process that saved them:
	next, err := c.Subscribe(ctx, client.Subscribe{From: first.LastIDs()})
	if err != nil {
		log.Fatal(err)
	}
	defer next.Close()
	for range 2 {
		ev, err := next.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("then", ev.ID)
	}
	// Output:
	// first read events:1
	// then events:2
	// then events:3
}

// A producer that sends many messages keeps one request open: each is published as soon as the
// server has read it.
func ExampleClient_OpenPublish() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(url)
	if err != nil {
		log.Fatal(err)
	}
	ps, err := c.OpenPublish(ctx, "events")
	if err != nil {
		log.Fatal(err)
	}
	for i := range 1000 {
		if err := ps.Send(client.Message{Key: "tick", Headers: map[string]string{"Origin": "example"}, Body: fmt.Appendf(nil, `{"i":%d}`, i)}); err != nil {
			break // the server has ended the stream: Close says why
		}
	}
	res, err := ps.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("accepted", res.Accepted)
	// Output:
	// accepted 1000
}
