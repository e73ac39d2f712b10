// Command emitcmd publishes one message to an rtm deployment with the Go
// emitter, from a process of its own (the routing tests run it).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gomodule/redigo/redis"

	"rtm/emitter"
)

func main() {
	addr := flag.String("redis", "redis://127.0.0.1:6379", "Redis URL")
	prefix := flag.String("prefix", "", "the servers' PRESENCE_PREFIX")
	room := flag.String("room", "", "target room")
	user := flag.String("user", "", "target user")
	sock := flag.String("socket", "", "target socket id")
	event := flag.String("event", "", "event name")
	data := flag.String("data", "null", "the event's argument, as JSON")
	disconnect := flag.Bool("disconnect", false, "disconnect the targets instead")
	flag.Parse()
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(*addr) }}
	defer pool.Close()
	em := emitter.New(pool, emitter.Options{Prefix: *prefix})
	b := em.To()
	if *room != "" {
		b = b.To(*room)
	}
	if *user != "" {
		b = b.ToUser(*user)
	}
	if *sock != "" {
		b = b.ToSocket(*sock)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if *disconnect {
		err = b.Disconnect(ctx)
	} else {
		err = b.Emit(ctx, *event, json.RawMessage(*data))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "emitcmd:", err)
		os.Exit(1)
	}
}
