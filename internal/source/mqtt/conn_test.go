package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// recorder is a net.Conn that keeps each Write, and fails them with err if set.
type recorder struct {
	net.Conn
	writes [][]byte
	err    error
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

// Each packet paho writes, in however many pieces, reaches the connection in one write, byte
// for byte as paho makes it.
func TestPacketConnOneWriteAPacket(t *testing.T) {
	var _ sync.Locker = newPacketConn(nil) // paho takes the lock around each packet
	big := &packets.Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte(strings.Repeat("x", 300_000)), Properties: &packets.Properties{}}
	big.Properties.User = append(big.Properties.User, packets.User{Key: "k", Value: "v"})
	for _, p := range []io.WriterTo{
		&packets.Puback{PacketID: 1, Properties: &packets.Properties{}},
		&packets.Pubrec{PacketID: 300, Properties: &packets.Properties{}},
		&packets.Connect{ClientID: "streamux-x", KeepAlive: 30, ProtocolName: "MQTT", ProtocolVersion: 5, Properties: &packets.Properties{}},
		&packets.Subscribe{PacketID: 2, Subscriptions: []packets.SubOptions{{Topic: "a/#", QoS: 1}}, Properties: &packets.Properties{}},
		big,
		&packets.Disconnect{Properties: &packets.Properties{}},
	} {
		var want bytes.Buffer
		if _, err := p.WriteTo(&want); err != nil {
			t.Fatal(err)
		}
		r := &recorder{}
		if _, err := p.WriteTo(newPacketConn(r)); err != nil {
			t.Fatalf("%T: %v", p, err)
		}
		if len(r.writes) != 1 || !bytes.Equal(r.writes[0], want.Bytes()) {
			t.Errorf("%T: %d writes, want one of the packet's %d bytes", p, len(r.writes), want.Len())
		}
	}
}

// The packet's write error is the last piece's, so paho sees it.
func TestPacketConnError(t *testing.T) {
	broken := errors.New("broken pipe")
	c := newPacketConn(&recorder{err: broken})
	if _, err := (&packets.Puback{PacketID: 1, Properties: &packets.Properties{}}).WriteTo(c); !errors.Is(err, broken) {
		t.Errorf("error %v, want %v", err, broken)
	}
	// The next packet starts afresh.
	r := &recorder{}
	c.Conn = r
	if _, err := (&packets.Puback{PacketID: 2, Properties: &packets.Properties{}}).WriteTo(c); err != nil || len(r.writes) != 1 {
		t.Errorf("after a failed write: %v, %d writes", err, len(r.writes))
	}
}
