package export

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// TLPs are the Traffic Light Protocol 2.0 labels, least restrictive first.
var TLPs = []string{"clear", "green", "amber", "amber+strict", "red"}

// tlp2Markings are the marking definitions of TLP 2.0 that OASIS publishes
// (cti-stix-common-objects, extension-definition-specifications/tlp-2.0): fixed
// ids, created 2022-10-01, the level in the TLP 2.0 property extension.
var tlp2Markings = map[string]string{
	"clear":        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
	"green":        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
	"amber":        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
	"amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
	"red":          "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

// tlp2Extension is the extension definition of TLP 2.0 markings.
const tlp2Extension = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

// TLPCreated is when OASIS created the TLP 2.0 marking definitions: their
// version.
var TLPCreated = time.Date(2022, 10, 1, 0, 0, 0, 0, time.UTC)

// MostRestrictiveTLP is the most restrictive of TLP 2.0 labels; an empty or
// unknown label counts as clear (catalog.DefaultTLP).
func MostRestrictiveTLP(tlps []string) string {
	rank := 0
	for _, t := range tlps {
		for i, known := range TLPs {
			if strings.EqualFold(strings.TrimPrefix(strings.ToLower(t), "tlp:"), known) && i > rank {
				rank = i
			}
		}
	}
	return TLPs[rank]
}

// TLPMarking is the id of a TLP 2.0 label's marking definition (clear when the
// label is unknown).
func TLPMarking(tlp string) string {
	if id, ok := tlp2Markings[tlp]; ok {
		return id
	}
	return tlp2Markings["clear"]
}

// TLPMarkingObject is a TLP 2.0 label's marking definition, as OASIS publishes it.
func TLPMarkingObject(tlp string) []byte {
	if _, ok := tlp2Markings[tlp]; !ok {
		tlp = "clear"
	}
	b, _ := json.Marshal(map[string]any{
		"type": "marking-definition", "spec_version": "2.1", "id": tlp2Markings[tlp], "created": STIXTime(TLPCreated),
		"name":       "TLP:" + strings.ToUpper(tlp),
		"extensions": map[string]any{tlp2Extension: map[string]string{"extension_type": "property-extension", "tlp_2_0": tlp}},
	})
	return b
}

// stixNamespace is the namespace of STIX 2.1's deterministic identifiers of
// cyber-observable objects (§2.9).
var stixNamespace = [16]byte{0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c, 0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7}

// STIXObservableID is the deterministic id STIX 2.1 (§2.9) gives a
// cyber-observable whose one ID-contributing property is value (ipv4-addr,
// ipv6-addr, domain-name, url): a version-5 UUID, in STIX's namespace, of the
// canonical JSON (RFC 8785) of {"value": value}.
func STIXObservableID(typ, value string) string {
	h := sha1.New()
	h.Write(stixNamespace[:])
	h.Write([]byte(`{"value":` + canonicalJSONString(value) + `}`))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return typ + "--" + x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// canonicalJSONString quotes s as RFC 8785 does: only the quote, the backslash
// and control characters escaped, the short forms where JSON has them.
func canonicalJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// STIXObservable is the cyber-observable of an address (ipv4-addr, ipv6-addr)
// or a domain (domain-name), with its deterministic id; false for a value
// that is neither.
func STIXObservable(value string) (id string, object []byte, ok bool) {
	typ := "domain-name"
	if a, err := netip.ParseAddr(value); err == nil {
		typ, value = "ipv4-addr", a.Unmap().String()
		if a.Unmap().Is6() {
			typ = "ipv6-addr"
		}
	} else if value == "" || strings.ContainsAny(value, " /:@") {
		return "", nil, false
	}
	id = STIXObservableID(typ, value)
	b, _ := json.Marshal(stixObservable{Type: typ, SpecVersion: "2.1", ID: id, Value: value})
	return id, b, true
}

type stixObservable struct {
	Type        string `json:"type"`
	SpecVersion string `json:"spec_version"`
	ID          string `json:"id"`
	Value       string `json:"value"`
}

// STIXVersion is what makes one version of a versioned object: its id (which
// changes only after a revocation), its times and whether it is revoked.
type STIXVersion struct {
	ID                string
	Created, Modified time.Time
	ValidUntil        time.Time // indicators
	Revoked           bool
}

// FluxNetwork is a fast-flux network as TIP's flux module groups it: the
// domains sharing flux agents, the agents' addresses and when they were seen.
type FluxNetwork struct {
	Name      string // its first domain by name
	Domains   []string
	Addrs     []string // the flux agents' addresses
	ASNs      int
	FirstSeen time.Time // the first and last time an agent was seen behind one of its domains
	LastSeen  time.Time
}

// STIXInfrastructureID is the id of a flux network's infrastructure object;
// episode counts its revocations (STIXIndicatorID).
func STIXInfrastructureID(network string, episode int) string {
	name := "tip:stix-flux-network:" + network
	if episode > 0 {
		name += fmt.Sprintf(":%d", episode)
	}
	return "infrastructure--" + UUIDv5(name)
}

type stixInfrastructure struct {
	stixCommon
	Name                string   `json:"name"`
	Description         string   `json:"description"`
	InfrastructureTypes []string `json:"infrastructure_types"`
	FirstSeen           string   `json:"first_seen,omitempty"`
	LastSeen            string   `json:"last_seen,omitempty"`
	ObjectMarkingRefs   []string `json:"object_marking_refs"`
}

// FluxNetworkTLP is the marking of what TIP's own flux monitors observed.
const FluxNetworkTLP = "clear"

// Infrastructure is the network's infrastructure object (a botnet). Its last
// sighting is kept to the hour, so a network watched every few minutes gets a
// new version at most hourly.
func (n FluxNetwork) Infrastructure(v STIXVersion) []byte {
	o := n.infrastructure(v)
	b, _ := json.Marshal(o)
	return b
}

func (n FluxNetwork) infrastructure(v STIXVersion) stixInfrastructure {
	o := stixInfrastructure{stixCommon: versioned("infrastructure", v.ID, v.Created, v.Modified, v.Revoked), Name: n.Name,
		Description: fmt.Sprintf("Fast-flux network watched by TIP: %d domains behind %d flux agents in %d autonomous systems.",
			len(n.Domains), len(n.Addrs), n.ASNs),
		InfrastructureTypes: []string{"botnet"}, ObjectMarkingRefs: []string{TLPMarking(FluxNetworkTLP)}}
	if !n.FirstSeen.IsZero() {
		o.FirstSeen = STIXTime(n.FirstSeen)
	}
	if !n.LastSeen.IsZero() {
		last := n.LastSeen.Truncate(time.Hour)
		if last.Before(n.FirstSeen) {
			last = n.FirstSeen
		}
		o.LastSeen = STIXTime(last)
	}
	return o
}

// InfrastructureDigest identifies what a version of the infrastructure says
// (Digest of STIXIndicator).
func (n FluxNetwork) InfrastructureDigest() string {
	o := n.infrastructure(STIXVersion{})
	o.Created, o.Modified = "", ""
	b, _ := json.Marshal(o)
	return digest(b)
}

// STIXRelationshipID is the id of the relationship of a type from one object
// to another.
func STIXRelationshipID(relType, source, target string) string {
	return "relationship--" + UUIDv5("tip:stix-relationship:"+relType+":"+source+":"+target)
}

type stixRelationship struct {
	stixCommon
	RelationshipType  string   `json:"relationship_type"`
	SourceRef         string   `json:"source_ref"`
	TargetRef         string   `json:"target_ref"`
	ObjectMarkingRefs []string `json:"object_marking_refs"`
}

// STIXConsistsOf is the relationship saying infrastructure consists of
// target (a domain-name or an address): its id is v.ID.
func STIXConsistsOf(v STIXVersion, infrastructure, target string) []byte {
	b, _ := json.Marshal(stixRelationship{stixCommon: versioned("relationship", v.ID, v.Created, v.Modified, v.Revoked), RelationshipType: "consists-of",
		SourceRef: infrastructure, TargetRef: target, ObjectMarkingRefs: []string{TLPMarking(FluxNetworkTLP)}})
	return b
}

// STIXRevoke is a new version of a versioned object, revoked at modified.
func STIXRevoke(object []byte, modified time.Time) ([]byte, error) {
	var o map[string]any
	if err := json.Unmarshal(object, &o); err != nil {
		return nil, err
	}
	o["revoked"], o["modified"] = true, STIXTime(modified)
	return json.Marshal(o)
}

func digest(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}
