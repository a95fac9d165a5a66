// Command kstatus reads objects as JSON (one object, or a List with items) on stdin and
// prints, per object, the status kstatus computes for it (status.Compute, the function
// Flux and cli-utils call) as JSON lines: {"name", "status", "message"}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		fail(err)
	}
	objects := list.Items
	if objects == nil {
		objects = []json.RawMessage{data}
	}
	for _, raw := range objects {
		// Unstructured's own decoding keeps integers int64, as kstatus' accessors expect.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fail(err)
		}
		result, err := status.Compute(u)
		if err != nil {
			fail(err)
		}
		line, err := json.Marshal(map[string]string{
			"name":    u.GetName(),
			"status":  result.Status.String(),
			"message": result.Message,
		})
		if err != nil {
			fail(err)
		}
		fmt.Println(string(line))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(2)
}
