package workflows

import "go.temporal.io/sdk/temporal"

// The custom search attributes TIP's workflows set, so the Web UI and
// `temporal workflow list --query` find runs by what they are about.
// `tip setup` registers every one of them in the namespace.
var (
	Module    = temporal.NewSearchAttributeKeyKeyword("Module")    // core, blacklist, spam, agent, flux
	Source    = temporal.NewSearchAttributeKeyKeyword("Source")    // blacklist source name
	Domain    = temporal.NewSearchAttributeKeyKeyword("Domain")    // monitored or triaged domain
	FluxState = temporal.NewSearchAttributeKeyKeyword("FluxState") // monitor state: watching, stable, dead...
	FluxScore = temporal.NewSearchAttributeKeyFloat64("FluxScore") // latest flux score
	FluxIPs   = temporal.NewSearchAttributeKeyInt64("FluxIPs")     // cumulative unique IPs seen
	Agent     = temporal.NewSearchAttributeKeyKeyword("Agent")     // spamtrap agent name
	Mailbox   = temporal.NewSearchAttributeKeyKeyword("Mailbox")   // IMAP mailbox being polled
)

// SearchAttributes lists every custom search attribute TIP uses.
var SearchAttributes = []temporal.SearchAttributeKey{Module, Source, Domain, FluxState, FluxScore, FluxIPs, Agent, Mailbox}
