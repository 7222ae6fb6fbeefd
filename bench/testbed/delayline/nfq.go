//go:build linux

package main

// The nfnetlink_queue wire format, spoken directly over a NETLINK_NETFILTER
// socket (include/uapi/linux/netfilter/nfnetlink_queue.h). Only what a delay
// line needs: bind a queue with a copy mode, queue length and flags, receive
// NFQNL_MSG_PACKET, answer with NFQNL_MSG_VERDICT(_BATCH).
//
// Layout of every message:
//
//	struct nlmsghdr  { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }   host order
//	struct nfgenmsg  { u8 family; u8 version; __be16 res_id; }             res_id = queue number
//	struct nlattr    { u16 len; u16 type; } + payload, padded to 4         header host order,
//	                                                                        payload network order

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	nlmsgHdrLen  = 16
	nfgenHdrLen  = 4
	nlattrHdrLen = 4

	nlmsgError = 2 // NLMSG_ERROR
	nlmsgDone  = 3 // NLMSG_DONE

	nlmFRequest = 0x1 // NLM_F_REQUEST
	nlmFAck     = 0x4 // NLM_F_ACK

	nfnlSubsysQueue = 3 // NFNL_SUBSYS_QUEUE

	nfqnlMsgPacket       = 0
	nfqnlMsgVerdict      = 1
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	// Packet attributes (enum nfqnl_attr_type).
	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaIfIndexIn  = 5
	nfqaIfIndexOut = 6
	nfqaPayload    = 10
	nfqaCapLen     = 13

	// Config attributes (enum nfqnl_attr_config).
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5

	// Config commands (enum nfqnl_msg_config_cmds).
	nfqnlCfgCmdBind   = 1
	nfqnlCfgCmdUnbind = 2

	// Copy modes (enum nfqnl_config_mode).
	nfqnlCopyNone   = 0
	nfqnlCopyMeta   = 1
	nfqnlCopyPacket = 2

	// Queue flags.
	nfqaCfgFFailOpen = 1 << 0 // accept instead of drop when the queue or socket is full
	nfqaCfgFGSO      = 1 << 2 // hand GSO packets over unsegmented

	nfDrop   = 0
	nfAccept = 1

	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

	afUnspec = 0
	afInet   = 2
)

var ne = binary.NativeEndian
var be = binary.BigEndian

func align4(n int) int { return (n + 3) &^ 3 }

// msgBuilder builds one nfnetlink message.
type msgBuilder struct{ b []byte }

func newMsg(msgType uint8, flags uint16, seq uint32, family uint8, queue uint16) *msgBuilder {
	b := make([]byte, nlmsgHdrLen+nfgenHdrLen, 64)
	ne.PutUint16(b[4:], uint16(nfnlSubsysQueue)<<8|uint16(msgType))
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seq)
	// pid 0: the kernel.
	b[16] = family
	b[17] = 0 // NFNETLINK_V0
	be.PutUint16(b[18:], queue)
	return &msgBuilder{b: b}
}

func (m *msgBuilder) attr(typ uint16, payload []byte) *msgBuilder {
	n := nlattrHdrLen + len(payload)
	hdr := make([]byte, nlattrHdrLen)
	ne.PutUint16(hdr[0:], uint16(n))
	ne.PutUint16(hdr[2:], typ)
	m.b = append(m.b, hdr...)
	m.b = append(m.b, payload...)
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
	return m
}

func (m *msgBuilder) bytes() []byte {
	ne.PutUint32(m.b[0:], uint32(len(m.b)))
	return m.b
}

func be32(v uint32) []byte { p := make([]byte, 4); be.PutUint32(p, v); return p }

// encodeCmd is NFQNL_MSG_CONFIG with NFQA_CFG_CMD {command, pad, __be16 pf}.
func encodeCmd(seq uint32, queue uint16, cmd uint8, pf uint16) []byte {
	p := []byte{cmd, 0, 0, 0}
	be.PutUint16(p[2:], pf)
	return newMsg(nfqnlMsgConfig, nlmFRequest|nlmFAck, seq, afUnspec, queue).attr(nfqaCfgCmd, p).bytes()
}

// encodeParams is NFQNL_MSG_CONFIG with NFQA_CFG_PARAMS {__be32 copy_range;
// u8 copy_mode} (5 bytes, packed), plus the queue length and flags.
func encodeParams(seq uint32, queue uint16, copyRange uint32, copyMode uint8, maxLen uint32, flags uint32) []byte {
	p := make([]byte, 5)
	be.PutUint32(p, copyRange)
	p[4] = copyMode
	return newMsg(nfqnlMsgConfig, nlmFRequest|nlmFAck, seq, afUnspec, queue).
		attr(nfqaCfgParams, p).
		attr(nfqaCfgQueueMaxlen, be32(maxLen)).
		attr(nfqaCfgMask, be32(flags)).
		attr(nfqaCfgFlags, be32(flags)).
		bytes()
}

// encodeVerdict is NFQNL_MSG_VERDICT for one packet, or with batch
// NFQNL_MSG_VERDICT_BATCH for every packet of the queue with id <= id.
// NFQA_VERDICT_HDR is {__be32 verdict; __be32 id}.
func encodeVerdict(queue uint16, id uint32, verdict uint32, batch bool) []byte {
	p := make([]byte, 8)
	be.PutUint32(p[0:], verdict)
	be.PutUint32(p[4:], id)
	t := uint8(nfqnlMsgVerdict)
	if batch {
		t = nfqnlMsgVerdictBatch
	}
	return newMsg(t, nlmFRequest, 0, afUnspec, queue).attr(nfqaVerdictHdr, p).bytes()
}

// nlMsg is one netlink message split out of a receive buffer.
type nlMsg struct {
	Type  uint16
	Flags uint16
	Seq   uint32
	Data  []byte // after the nlmsghdr
}

var errTruncated = errors.New("nfq: truncated netlink message")

// splitMessages splits a receive buffer into netlink messages, appended to dst.
func splitMessages(dst []nlMsg, b []byte) ([]nlMsg, error) {
	out := dst
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return out, errTruncated
		}
		n := int(ne.Uint32(b[0:]))
		if n < nlmsgHdrLen || n > len(b) {
			return out, errTruncated
		}
		out = append(out, nlMsg{Type: ne.Uint16(b[4:]), Flags: ne.Uint16(b[6:]), Seq: ne.Uint32(b[8:]), Data: b[nlmsgHdrLen:n]})
		if a := align4(n); a < len(b) {
			b = b[a:]
		} else {
			b = nil
		}
	}
	return out, nil
}

// parseError decodes NLMSG_ERROR: an errno (0 = ack) and the seq it answers.
func parseError(m nlMsg) (errno int32, seq uint32, err error) {
	if m.Type != nlmsgError {
		return 0, 0, fmt.Errorf("nfq: message type %d is not NLMSG_ERROR", m.Type)
	}
	if len(m.Data) < 4+nlmsgHdrLen {
		return 0, 0, errTruncated
	}
	return int32(ne.Uint32(m.Data[0:])), ne.Uint32(m.Data[4+8:]), nil
}

// packet is what the delay line needs of NFQNL_MSG_PACKET.
type packet struct {
	Queue  uint16
	ID     uint32
	Hook   uint8
	Proto  uint16 // hw_protocol (ethertype)
	Len    uint32 // the packet's length (NFQA_CAP_LEN, else the payload's)
	InDev  uint32
	OutDev uint32
}

// isPacket tells whether a message is NFQNL_MSG_PACKET.
func isPacket(m nlMsg) bool { return m.Type == uint16(nfnlSubsysQueue)<<8|nfqnlMsgPacket }

// parsePacket decodes NFQNL_MSG_PACKET.
func parsePacket(m nlMsg) (packet, error) {
	var p packet
	if !isPacket(m) {
		return p, fmt.Errorf("nfq: message type %#x is not a queued packet", m.Type)
	}
	if len(m.Data) < nfgenHdrLen {
		return p, errTruncated
	}
	p.Queue = be.Uint16(m.Data[2:])
	b := m.Data[nfgenHdrLen:]
	gotHdr := false
	for len(b) >= nlattrHdrLen {
		n := int(ne.Uint16(b[0:]))
		typ := ne.Uint16(b[2:]) & nlaTypeMask
		if n < nlattrHdrLen || n > len(b) {
			return p, errTruncated
		}
		v := b[nlattrHdrLen:n]
		switch typ {
		case nfqaPacketHdr:
			if len(v) < 7 {
				return p, errTruncated
			}
			p.ID = be.Uint32(v[0:])
			p.Proto = be.Uint16(v[4:])
			p.Hook = v[6]
			gotHdr = true
		case nfqaCapLen:
			if len(v) >= 4 {
				p.Len = be.Uint32(v)
			}
		case nfqaPayload:
			if p.Len == 0 {
				p.Len = uint32(len(v))
			}
		case nfqaIfIndexIn:
			if len(v) >= 4 {
				p.InDev = be.Uint32(v)
			}
		case nfqaIfIndexOut:
			if len(v) >= 4 {
				p.OutDev = be.Uint32(v)
			}
		}
		if a := align4(n); a < len(b) {
			b = b[a:]
		} else {
			b = nil
		}
	}
	if !gotHdr {
		return p, errors.New("nfq: packet without NFQA_PACKET_HDR")
	}
	return p, nil
}
