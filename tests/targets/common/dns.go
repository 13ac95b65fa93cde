// Shared by naive and hardened (linked into each as dns.go and compiled with its main.go): the
// in-process DNS responder (-dns-listen) and the resolver aimed at a given server (-resolver),
// both flags declared by each binary's main.go.
package main

import (
	"context"
	"encoding/binary"
	"io"
	"log"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// ---- DNS: an in-process responder, and a resolver aimed at a given server -------------------------

// The responder's answers (UDP, TCP), and the UDP datagrams this process's resolver sent and got
// back. Both ends in one process: a query answered but never received is a reply lost on the way.
var dnsAnswered, dnsAnsweredTCP, dnsQueries, dnsReplies atomic.Int64

type dnsStatsDoc struct {
	Answered      int64  `json:"answered"`     // UDP answers the responder sent
	AnsweredTCP   int64  `json:"answered_tcp"` // TCP answers the responder sent
	Queries       int64  `json:"queries"`      // UDP queries the resolver sent
	Replies       int64  `json:"replies"`      // UDP replies the resolver received
	RefreshFailed *int64 `json:"refresh_failed,omitempty"`
}

func dnsStats() *dnsStatsDoc {
	if *dnsListen == "" && *resolverAddr == "" {
		return nil
	}
	return &dnsStatsDoc{Answered: dnsAnswered.Load(), AnsweredTCP: dnsAnsweredTCP.Load(),
		Queries: dnsQueries.Load(), Replies: dnsReplies.Load()}
}

// ipPortOK: empty, or a literal IP and a port.
func ipPortOK(s string) bool {
	if s == "" {
		return true
	}
	h, p, err := net.SplitHostPort(s)
	return err == nil && net.ParseIP(h) != nil && p != ""
}

// dnsAnswer is the reply to one DNS query: an A question (class IN) gets 127.0.0.1 (TTL 1 s), any
// other type an empty NOERROR answer, a query of another opcode NOTIMP, more or fewer than one
// question FORMERR; nil for what is not a query at all.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 {
		return nil
	}
	hdr := func(rcode byte, qd, an uint16) []byte {
		h := []byte{q[0], q[1], 0x80 | q[2]&0x79, 0x80 | rcode, 0, 0, 0, 0, 0, 0, 0, 0} // QR, opcode+RD kept, RA
		binary.BigEndian.PutUint16(h[4:], qd)
		binary.BigEndian.PutUint16(h[6:], an)
		return h
	}
	if op := q[2] >> 3 & 0xf; op != 0 {
		return hdr(4, 0, 0)
	}
	if binary.BigEndian.Uint16(q[4:]) != 1 {
		return hdr(1, 0, 0)
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		if q[i]&0xc0 != 0 { // a question's name is never compressed
			return hdr(1, 0, 0)
		}
		i += 1 + int(q[i])
	}
	if i+5 > len(q) {
		return hdr(1, 0, 0)
	}
	end := i + 5 // the root label, QTYPE, QCLASS
	isA := binary.BigEndian.Uint16(q[i+1:]) == 1 && binary.BigEndian.Uint16(q[i+3:]) == 1
	var an uint16
	if isA {
		an = 1
	}
	r := append(hdr(0, 1, an), q[12:end]...)
	if isA { // name: pointer to the question's; A IN, TTL 1, 4 bytes
		r = append(r, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 127, 0, 0, 1)
	}
	return r
}

// startDNS answers queries on addr over UDP and TCP (length-prefixed, several per connection).
func startDNS(addr string) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		log.Fatalf("dns listen: %v", err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		log.Fatalf("dns listen: %v", err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				time.Sleep(5 * time.Millisecond) // EMFILE cannot happen here (no new fd); be gentle anyway
				continue
			}
			if r := dnsAnswer(buf[:n]); r != nil {
				if _, err := pc.WriteTo(r, from); err == nil {
					dnsAnswered.Add(1)
				}
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			go func() {
				defer c.Close()
				var n [2]byte
				for {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := io.ReadFull(c, n[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(n[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					r := dnsAnswer(q)
					if r == nil {
						return
					}
					if _, err := c.Write(append([]byte{byte(len(r) >> 8), byte(len(r))}, r...)); err != nil {
						return
					}
					dnsAnsweredTCP.Add(1)
				}
			}()
		}
	}()
	log.Printf("in-process DNS responder on %s (udp, tcp): every A query answered 127.0.0.1", pc.LocalAddr())
}

// countedUDP counts the resolver's datagrams. It must stay a net.PacketConn: Go's resolver frames
// messages with a length prefix on any conn that is not one.
type countedUDP struct{ *net.UDPConn }

func (c countedUDP) Write(b []byte) (int, error) {
	n, err := c.UDPConn.Write(b)
	if err == nil {
		dnsQueries.Add(1)
	}
	return n, err
}

func (c countedUDP) Read(b []byte) (int, error) {
	n, err := c.UDPConn.Read(b)
	if n > 0 {
		dnsReplies.Add(1)
	}
	return n, err
}

// newResolver is Go's own DNS client aimed at server instead of the servers in /etc/resolv.conf (which
// still sets the timeout, attempts and search list), as a service with its own resolver does.
func newResolver(server string) *net.Resolver {
	var d net.Dialer
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, server)
		if u, ok := c.(*net.UDPConn); ok && err == nil && strings.HasPrefix(network, "udp") {
			return countedUDP{u}, nil
		}
		return c, err
	}}
}
