package dnsstub

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// benchRoundTrips runs parallel clients, each on its own connection to
// addr, doing roundTrip once per iteration, and reports queries per second.
func benchRoundTrips(b *testing.B, network, addr string, roundTrip func(c net.Conn, buf []byte) error) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial(network, addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 1024)
		for pb.Next() {
			if err := roundTrip(c, buf); err != nil {
				b.Error(err) // a lost datagram on loopback would be a finding too
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

// BenchmarkUDPQueries measures answered queries per second on loopback,
// with parallel clients (one socket each) asking for an allowed name.
func BenchmarkUDPQueries(b *testing.B) {
	s := serveStub(b, nil)
	q := makeQuery(b, "allowed.example.", dnsmessage.TypeA, queryOpts{})
	benchRoundTrips(b, "udp", s.udpAddr, func(c net.Conn, buf []byte) error {
		if _, err := c.Write(q); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(buf)
		return err
	})
}

// BenchmarkTCPQueries measures queries per second on one loopback TCP
// connection per client, one query at a time.
func BenchmarkTCPQueries(b *testing.B) {
	s := serveStub(b, nil)
	q := makeQuery(b, "allowed.example.", dnsmessage.TypeAAAA, queryOpts{})
	msg := append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	benchRoundTrips(b, "tcp", s.tcpAddr, func(c net.Conn, buf []byte) error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return err
		}
		_, err := io.ReadFull(c, buf[:binary.BigEndian.Uint16(buf)])
		return err
	})
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
