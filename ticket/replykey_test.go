package ticket

import "testing"

func TestReplyKeys(t *testing.T) {
	t.Parallel()
	keys, err := NewReplyKeys([]byte("0123456789abcdef-secret"))
	if err != nil {
		t.Fatal(err)
	}
	key := keys.Sign("acme", 4242)

	t.Run("round trip", func(t *testing.T) {
		id, err := keys.Verify("acme", key)
		if err != nil || id != 4242 {
			t.Fatalf("Verify(%q) = %d, %v; want 4242, nil", key, id, err)
		}
	})
	t.Run("case folded by a mail client", func(t *testing.T) {
		upper := "R1-" + key[3:]
		if id, err := keys.Verify("ACME", upper); err != nil || id != 4242 {
			t.Fatalf("Verify(%q) = %d, %v", upper, id, err)
		}
	})
	t.Run("forged onto another ticket", func(t *testing.T) {
		forged := "r1-" + "3a" + key[len(key)-21:]
		if _, err := keys.Verify("acme", forged); err != ErrBadReplyKey {
			t.Fatalf("Verify(forged %q) err = %v; want ErrBadReplyKey", forged, err)
		}
	})
	t.Run("other project", func(t *testing.T) {
		if _, err := keys.Verify("other", key); err != ErrBadReplyKey {
			t.Fatalf("key of acme verified for other: err = %v", err)
		}
	})
	t.Run("other secret", func(t *testing.T) {
		other, _ := NewReplyKeys([]byte("another-secret-of-16+"))
		if _, err := other.Verify("acme", key); err != ErrBadReplyKey {
			t.Fatalf("key verified under another secret: err = %v", err)
		}
	})
	t.Run("found in addresses and references", func(t *testing.T) {
		addr := ReplyAddress("support+old@example.test", key)
		if want := "support+" + key + "@example.test"; addr != want {
			t.Fatalf("ReplyAddress = %q; want %q", addr, want)
		}
		refs := "<abc@mail.gmail.com>, " + ReplyReference("support@example.test", key)
		got := FindReplyKeys(refs)
		if len(got) != 1 || got[0] != key {
			t.Fatalf("FindReplyKeys(%q) = %v; want [%s]", refs, got, key)
		}
	})
	t.Run("short secret refused", func(t *testing.T) {
		if _, err := NewReplyKeys([]byte("short")); err == nil {
			t.Fatal("NewReplyKeys accepted a 5-byte secret")
		}
	})
}
