package dnsstub

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// benchServer serves a stub on loopback UDP and TCP for a benchmark.
func benchServer(b *testing.B) (udpAddr, tcpAddr string) {
	b.Helper()
	s := newStub(b, nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(b, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = s.ServeUDP(ctx, pc); done <- struct{}{} }()
	go func() { _ = s.ServeTCP(ctx, l); done <- struct{}{} }()
	b.Cleanup(func() { cancel(); <-done; <-done })
	return pc.LocalAddr().String(), l.Addr().String()
}

// BenchmarkUDPQueries measures answered queries per second on loopback,
// with parallel clients (one socket each) asking for an allowed name.
func BenchmarkUDPQueries(b *testing.B) {
	addr, _ := benchServer(b)
	q := makeQuery(b, "allowed.example.", dnsmessage.TypeA, queryOpts{})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 1024)
		for pb.Next() {
			if _, err := c.Write(q); err != nil {
				b.Error(err)
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err != nil {
				b.Error(err) // a lost datagram on loopback would be a finding
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

// BenchmarkTCPQueries measures queries per second on one loopback TCP
// connection per client, one query at a time.
func BenchmarkTCPQueries(b *testing.B) {
	_, addr := benchServer(b)
	q := makeQuery(b, "allowed.example.", dnsmessage.TypeAAAA, queryOpts{})
	msg := append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 1024)
		for pb.Next() {
			if _, err := c.Write(msg); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(c, buf[:2]); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(c, buf[:binary.BigEndian.Uint16(buf)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

// BenchmarkRespond measures the packet handler alone.
func BenchmarkRespond(b *testing.B) {
	s := newStub(b, nil)
	q := makeQuery(b, "allowed.example.", dnsmessage.TypeA, queryOpts{edns: true})
	b.ReportAllocs()
	for b.Loop() {
		if s.respond(q, true, udpFrom) == nil {
			b.Fatal("no reply")
		}
	}
}
