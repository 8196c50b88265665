package sourcetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// CloseAMQPConnections closes, from the broker's side, every RabbitMQ connection whose client
// named itself connName (the connection_name client property), with rabbitmqctl. It returns how
// many it closed. Unlike rabbitmqctl close_all_connections, it leaves the connections of other
// tests alone.
func CloseAMQPConnections(ctx context.Context, connName string) (int, error) {
	out, err := rabbitmqctl(ctx, "list_connections", "pid", "client_properties")
	if err != nil {
		return 0, err
	}
	needle := fmt.Sprintf(`{"connection_name",%q}`, connName)
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, needle) {
			continue
		}
		pid, _, _ := strings.Cut(line, "\t")
		if _, err := rabbitmqctl(ctx, "close_connection", pid, "closed by sourcetest"); err != nil {
			return n, err
		}
		n++
	}
	return n, sc.Err()
}

// AMQPBacklog returns the ready messages (published, not yet delivered to a consumer) of the
// queues bound to exchange, with rabbitmqctl, which unlike a passive queue declaration also sees
// exclusive queues of other connections. With no queue bound it returns 0.
func AMQPBacklog(ctx context.Context, exchange string) (int, error) {
	queues, err := AMQPBoundQueues(ctx, exchange)
	if err != nil || len(queues) == 0 {
		return 0, err
	}
	return AMQPReadyMessages(ctx, queues...)
}

// AMQPBoundQueues returns the queues bound to exchange, with rabbitmqctl.
func AMQPBoundQueues(ctx context.Context, exchange string) ([]string, error) {
	out, err := rabbitmqctl(ctx, "list_bindings", "source_name", "destination_name")
	if err != nil {
		return nil, err
	}
	var queues []string
	for _, line := range strings.Split(string(out), "\n") {
		src, dst, ok := strings.Cut(line, "\t")
		if ok && src == exchange && !slices.Contains(queues, dst) {
			queues = append(queues, dst)
		}
	}
	return queues, nil
}

// AMQPReadyMessages returns the total of the ready messages of the named queues, with
// rabbitmqctl (one call, about half a second). A queue that does not exist is an error.
func AMQPReadyMessages(ctx context.Context, queues ...string) (int, error) {
	return queueTotal(ctx, "messages_ready", queues)
}

// AMQPUnacknowledged returns the total of the messages of the named queues that were delivered
// and not yet acknowledged, as AMQPReadyMessages does.
func AMQPUnacknowledged(ctx context.Context, queues ...string) (int, error) {
	return queueTotal(ctx, "messages_unacknowledged", queues)
}

// queueTotal sums one numeric column of rabbitmqctl list_queues over the named queues.
func queueTotal(ctx context.Context, column string, queues []string) (int, error) {
	out, err := rabbitmqctl(ctx, "list_queues", "name", column)
	if err != nil {
		return 0, err
	}
	total, found := 0, 0
	for _, line := range strings.Split(string(out), "\n") {
		name, n, ok := strings.Cut(line, "\t")
		if !ok || !slices.Contains(queues, name) {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			return 0, fmt.Errorf("rabbitmqctl list_queues: %q: %w", line, err)
		}
		total += v
		found++
	}
	if found < len(queues) {
		return 0, fmt.Errorf("rabbitmqctl list_queues: %d of the queues %q not found", len(queues)-found, queues)
	}
	return total, nil
}

func rabbitmqctl(ctx context.Context, args ...string) ([]byte, error) {
	args = append([]string{"--quiet"}, args...)
	if args[1] != "close_connection" {
		args = append(args, "--no-table-headers")
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "rabbitmqctl", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
