package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/source"
)

// consumer finds the source's durable consumer on the server, or makes it: one that exists is
// read as it is, but for the settings configured explicitly (ack_wait, max_ack_pending,
// filter_subject, inactive_threshold), which are changed to what the configuration says. What
// retrying soon will not cure (no such stream, a consumer that cannot be read, changes the
// server refuses) is source.Permanent.
func (s *StreamSource) consumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	st, err := js.Stream(ctx, s.cfg.Stream)
	if err != nil {
		return nil, permanentAPI(fmt.Errorf("stream %q: %w", s.cfg.Stream, err))
	}
	c, err := st.Consumer(ctx, s.name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		c, err = st.CreateConsumer(ctx, s.newConsumer())
		if err != nil {
			return nil, permanentAPI(fmt.Errorf("create consumer %q on stream %q: %w", s.name, s.cfg.Stream, err))
		}
		return c, nil
	case errors.Is(err, jetstream.ErrNotPullConsumer):
		return nil, source.Permanent(fmt.Errorf("consumer %q of stream %q is a push consumer (it has a deliver_subject); streamux reads through a pull consumer: name another", s.name, s.cfg.Stream))
	case err != nil:
		return nil, permanentAPI(fmt.Errorf("consumer %q of stream %q: %w", s.name, s.cfg.Stream, err))
	}
	have := c.CachedInfo().Config
	if have.AckPolicy == jetstream.AckNonePolicy {
		return nil, source.Permanent(fmt.Errorf("consumer %q of stream %q acknowledges nothing (ack policy none), and streamux acknowledges each message once its router took it: name a consumer with explicit acknowledgements", s.name, s.cfg.Stream))
	}
	if want, changed := s.changes(have); changed {
		if c, err = st.UpdateConsumer(ctx, want); err != nil {
			return nil, permanentAPI(fmt.Errorf("consumer %q of stream %q differs from the configuration (ack_wait, max_ack_pending, filter_subject or inactive_threshold), and changing it failed: %w", s.name, s.cfg.Stream, err))
		}
	}
	return c, nil
}

// newConsumer is the configuration of the consumer that streamux makes when there is none.
func (s *StreamSource) newConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:           s.name,
		Description:       "streamux",
		DeliverPolicy:     s.start.policy,
		OptStartSeq:       s.start.seq,
		OptStartTime:      optTime(s.start),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           s.cfg.AckWait,
		MaxAckPending:     s.cfg.MaxAckPending,
		FilterSubject:     s.cfg.FilterSubject,
		InactiveThreshold: s.cfg.InactiveThreshold,
	}
}

// optTime is a start's time, for a consumer that begins at one.
func optTime(st start) *time.Time {
	if st.policy != jetstream.DeliverByStartTimePolicy {
		return nil
	}
	t := st.time
	return &t
}

// changes returns the configuration of an existing consumer with what the source's
// configuration sets explicitly, and whether that changes anything.
func (s *StreamSource) changes(have jetstream.ConsumerConfig) (jetstream.ConsumerConfig, bool) {
	want := have
	if s.explicit.AckWait != 0 {
		want.AckWait = s.explicit.AckWait
	}
	if s.explicit.MaxAckPending != 0 {
		want.MaxAckPending = s.explicit.MaxAckPending
	}
	if s.explicit.InactiveThreshold != 0 {
		want.InactiveThreshold = s.explicit.InactiveThreshold
	}
	if s.cfg.FilterSubject != "" && len(have.FilterSubjects) == 0 {
		want.FilterSubject = s.cfg.FilterSubject
	}
	changed := want.AckWait != have.AckWait || want.MaxAckPending != have.MaxAckPending ||
		want.InactiveThreshold != have.InactiveThreshold || want.FilterSubject != have.FilterSubject
	return want, changed
}

// permanentAPI marks err source.Permanent when JetStream refused the request as it is (an API
// error of status 4xx: no such stream, a bad configuration, not permitted), or has no JetStream
// at all: retrying soon will not cure it. Timeouts and unavailable servers are retried.
func permanentAPI(err error) error {
	err = fmt.Errorf("jetstream: %w", err)
	var api *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return source.Permanent(err)
	case errors.As(err, &api) && api.Code >= 400 && api.Code < 500:
		return source.Permanent(err)
	}
	return classify(err)
}
