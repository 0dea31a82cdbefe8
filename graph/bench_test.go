package graph

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/fakegraph"
)

// BenchmarkFetchThroughGraph lists and downloads 200 messages of 4 KB from
// a fake Graph that answers every request after 2 ms, as a fetch run does:
// through a Client and its SQLite store ("client"), beside the ceiling,
// the same delta pages and downloads done bare with net/http, four at a
// time ("bare"). Both report messages/s.
func BenchmarkFetchThroughGraph(b *testing.B) {
	const n = 200
	fake := fakegraph.New(b)
	fake.Latency = 2 * time.Millisecond
	for i := range n {
		fake.Deliver("Inbox", mime(i)+strings.Repeat("x", 4096))
	}

	b.Run("client", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			st := sqliteStore(b)
			d := NewDialer(storeOf{st}, nil)
			b.StartTimer()
			c, err := d.Dial(b.Context(), fakeConfig(fake))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Select(b.Context(), "Inbox"); err != nil {
				b.Fatal(err)
			}
			es, err := c.List(b.Context(), 0, 0)
			if err != nil || len(es) != n {
				b.Fatalf("List = %d, %v; want %d", len(es), err, n)
			}
			got := 0
			if err := c.Fetch(b.Context(), uidsOf(es), func(uint32, []byte) error { got++; return nil }); err != nil || got != n {
				b.Fatalf("Fetch = %d, %v", got, err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("bare", func(b *testing.B) {
		hc := &http.Client{}
		for b.Loop() {
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {fake.ClientID},
				"client_secret": {fake.Secret}, "scope": {fake.URL + "/.default"}}
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			getJSON(b, hc, http.MethodPost, fake.URL+"/"+fake.Tenant+"/oauth2/v2.0/token", "", strings.NewReader(form.Encode()), &tok)
			api := fake.URL + "/v1.0/users/" + fake.User
			var inbox struct {
				ID string `json:"id"`
			}
			getJSON(b, hc, http.MethodGet, api+"/mailFolders/inbox", tok.AccessToken, nil, &inbox)
			var ids []string
			for link := api + "/mailFolders/" + inbox.ID + "/messages/delta"; link != ""; {
				var page listing
				getJSON(b, hc, http.MethodGet, link, tok.AccessToken, nil, &page)
				for _, m := range page.Value {
					ids = append(ids, m.ID)
				}
				link = page.NextLink
			}
			var wg sync.WaitGroup
			next := make(chan string)
			for range 4 {
				wg.Go(func() {
					for id := range next {
						req, _ := http.NewRequest(http.MethodGet, api+"/messages/"+id+"/$value", nil)
						req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
						resp, err := hc.Do(req)
						if err != nil {
							b.Error(err)
							continue
						}
						_, _ = io.ReadAll(resp.Body)
						resp.Body.Close()
					}
				})
			}
			for _, id := range ids {
				next <- id
			}
			close(next)
			wg.Wait()
			if len(ids) != n {
				b.Fatalf("bare listing found %d messages; want %d", len(ids), n)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

func getJSON(b *testing.B, hc *http.Client, method, link, token string, body io.Reader, out any) {
	b.Helper()
	req, _ := http.NewRequest(method, link, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	} else {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Prefer", "odata.maxpagesize=100")
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: %s", method, link, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		b.Fatal(fmt.Errorf("decode %s: %w", link, err))
	}
}
