package cluster_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flowline-go/flowline/executor/cluster"
)

// TestOnlyABareAcknowledgementCountsAsStored: the worker's fast result
// write takes an answer for "stored" only when it is the server's bare
// acknowledgement; anything else goes to kv.Create to be told apart.
func TestOnlyABareAcknowledgementCountsAsStored(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want bool
	}{
		{"stored", `{"stream":"KV_flowline-results","seq":42}`, true},
		{"stored with a domain", `{"stream":"KV_flowline-results","domain":"hub","seq":42}`, true},
		{"the key exists", `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 7"},"stream":"KV_flowline-results","seq":0}`, false},
		{"unavailable", `{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`, false},
		{"an error after the stream", `{"stream":"KV_flowline-results","error":{"code":500}}`, false},
		{"empty", ``, false},
		{"a status", `NATS/1.0 503`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, cluster.StoredAck([]byte(tc.data)))
		})
	}
}
