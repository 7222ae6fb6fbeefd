//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func littleEndianHost(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are written for a little-endian host")
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeVerdictBatchGolden(t *testing.T) {
	littleEndianHost(t)
	got := encodeVerdict(1, 0x01020304, nfAccept, true)
	want := unhex(t, ""+
		"20000000"+ // nlmsg len 32
		"0303"+ // type: NFNL_SUBSYS_QUEUE<<8 | NFQNL_MSG_VERDICT_BATCH
		"0100"+ // flags: NLM_F_REQUEST
		"00000000"+ // seq
		"00000000"+ // pid
		"00000001"+ // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 1 (big-endian)
		"0c000200"+ // nlattr len 12, NFQA_VERDICT_HDR
		"00000001"+ // verdict NF_ACCEPT (big-endian)
		"01020304") // packet id (big-endian)
	if !bytes.Equal(got, want) {
		t.Fatalf("verdict batch:\n got %x\nwant %x", got, want)
	}
	single := encodeVerdict(1, 0x01020304, nfDrop, false)
	if single[4] != nfqnlMsgVerdict || single[5] != nfnlSubsysQueue || single[27] != nfDrop {
		t.Fatalf("single verdict: %x", single)
	}
}

func TestEncodeConfigGolden(t *testing.T) {
	littleEndianHost(t)
	got := encodeCmd(7, 3, nfqnlCfgCmdBind, afInet)
	want := unhex(t, ""+
		"1c000000"+ // len 28
		"0203"+ // NFQNL_MSG_CONFIG
		"0500"+ // NLM_F_REQUEST|NLM_F_ACK
		"07000000"+ // seq 7
		"00000000"+
		"00000003"+ // queue 3
		"08000100"+ // NFQA_CFG_CMD
		"01000002") // BIND, pad, pf AF_INET (big-endian)
	if !bytes.Equal(got, want) {
		t.Fatalf("config cmd:\n got %x\nwant %x", got, want)
	}
	got = encodeParams(8, 3, 0, nfqnlCopyMeta, 4096, nfqaCfgFFailOpen|nfqaCfgFGSO)
	want = unhex(t, ""+
		"38000000"+ // len 56
		"0203"+
		"0500"+
		"08000000"+
		"00000000"+
		"00000003"+
		"09000200"+ // NFQA_CFG_PARAMS, 5 bytes payload (packed struct) ...
		"0000000001000000"+ // copy_range 0, copy_mode META, 3 bytes of padding
		"08000300"+ // NFQA_CFG_QUEUE_MAXLEN
		"00001000"+ // 4096
		"08000400"+ // NFQA_CFG_MASK
		"00000005"+ // FAIL_OPEN|GSO
		"08000500"+ // NFQA_CFG_FLAGS
		"00000005")
	if !bytes.Equal(got, want) {
		t.Fatalf("config params:\n got %x\nwant %x", got, want)
	}
}

// kernelPacket builds an NFQNL_MSG_PACKET the way the kernel lays it out.
func kernelPacket(queue uint16, id uint32, capLen uint32) []byte {
	m := newMsg(nfqnlMsgPacket, 0, 0, afInet, queue)
	hdr := make([]byte, 7) // struct nfqnl_msg_packet_hdr is packed: 4+2+1
	binary.BigEndian.PutUint32(hdr, id)
	binary.BigEndian.PutUint16(hdr[4:], 0x0800)
	hdr[6] = 2 // NF_INET_FORWARD
	m.attr(nfqaPacketHdr, hdr)
	m.attr(nfqaIfIndexIn, be32(3))
	m.attr(nfqaIfIndexOut, be32(4))
	m.attr(11|0x8000, []byte{8, 0, 1, 0, 0, 0, 0, 1}) // NFQA_CT, nested flag set: skipped
	m.attr(nfqaCapLen, be32(capLen))
	return m.bytes()
}

func TestParsePacket(t *testing.T) {
	buf := append(kernelPacket(7, 0xdeadbeef, 1500), kernelPacket(7, 0xdeadbef0, 66)...)
	msgs, err := splitMessages(nil, buf)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("split: %d messages, %v", len(msgs), err)
	}
	p, err := parsePacket(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := packet{Queue: 7, ID: 0xdeadbeef, Hook: 2, Proto: 0x0800, Len: 1500, InDev: 3, OutDev: 4}
	if p != want {
		t.Fatalf("got %+v want %+v", p, want)
	}
	p, err = parsePacket(msgs[1])
	if err != nil || p.ID != 0xdeadbef0 || p.Len != 66 {
		t.Fatalf("second packet %+v %v", p, err)
	}
	// A payload (copy mode PACKET) gives the length when there is no CAP_LEN.
	m := newMsg(nfqnlMsgPacket, 0, 0, afInet, 1)
	m.attr(nfqaPacketHdr, []byte{0, 0, 0, 9, 8, 0, 2})
	m.attr(nfqaPayload, make([]byte, 40))
	msgs, _ = splitMessages(nil, m.bytes())
	if p, err := parsePacket(msgs[0]); err != nil || p.Len != 40 || p.ID != 9 || p.Queue != 1 {
		t.Fatalf("payload packet %+v %v", p, err)
	}
}

func TestParseAckAndError(t *testing.T) {
	req := encodeCmd(42, 0, nfqnlCfgCmdBind, afInet)
	for _, errno := range []int32{0, -16} {
		b := make([]byte, nlmsgHdrLen+4+len(req))
		binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:], nlmsgError)
		binary.NativeEndian.PutUint32(b[nlmsgHdrLen:], uint32(errno))
		copy(b[nlmsgHdrLen+4:], req)
		msgs, err := splitMessages(nil, b)
		if err != nil || len(msgs) != 1 {
			t.Fatal(len(msgs), err)
		}
		if isPacket(msgs[0]) {
			t.Fatal("an error message is not a packet")
		}
		got, seq, err := parseError(msgs[0])
		if err != nil || got != errno || seq != 42 {
			t.Fatalf("errno %d seq %d err %v", got, seq, err)
		}
	}
}

func TestTruncatedInputNeverPanics(t *testing.T) {
	full := append(kernelPacket(1, 5, 100), encodeCmd(1, 1, nfqnlCfgCmdBind, afInet)...)
	for n := 0; n < len(full); n++ {
		msgs, _ := splitMessages(nil, full[:n])
		for _, m := range msgs {
			_, _ = parsePacket(m)
			_, _, _ = parseError(m)
		}
	}
	// A length field that claims more than the buffer holds is refused.
	bad := kernelPacket(1, 5, 100)
	binary.NativeEndian.PutUint32(bad, uint32(len(bad)+8))
	if _, err := splitMessages(nil, bad); err == nil {
		t.Fatal("oversized nlmsg length accepted")
	}
	// An attribute running past its message is refused.
	bad = kernelPacket(1, 5, 100)
	binary.NativeEndian.PutUint16(bad[nlmsgHdrLen+nfgenHdrLen:], 200)
	msgs, _ := splitMessages(nil, bad)
	if _, err := parsePacket(msgs[0]); err == nil {
		t.Fatal("oversized attribute accepted")
	}
}

func TestQueueFlag(t *testing.T) {
	var q queueFlag
	if err := q.Set("1=2.5ms"); err != nil || len(q) != 1 || q[0].Num != 1 || q[0].Delay.Microseconds() != 2500 {
		t.Fatalf("%v %v", q, err)
	}
	for _, bad := range []string{"1", "x=1ms", "1=soon", "70000=1ms", "1=-1ms"} {
		if err := q.Set(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestMmsgReader(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Skip("no socketpair:", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	r := newMmsgReader(4, 256)
	if n, err := r.read(fds[1]); n != 0 || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("empty socket: %d %v", n, err)
	}
	want := [][]byte{kernelPacket(1, 1, 100), kernelPacket(1, 2, 200), encodeVerdict(1, 2, nfAccept, true)}
	for _, m := range want {
		if _, err := unix.Write(fds[0], m); err != nil {
			t.Fatal(err)
		}
	}
	n, err := r.read(fds[1])
	if err != nil || n != len(want) {
		t.Fatalf("read %d datagrams, %v", n, err)
	}
	for i := range want {
		if !bytes.Equal(r.msg(i), want[i]) {
			t.Fatalf("datagram %d: %x, want %x", i, r.msg(i), want[i])
		}
	}
}
