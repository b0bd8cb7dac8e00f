// Package bench holds TIP's benchmarks against the lab, run by `make bench`:
//
//   - parse: the lab's 1,000,000-line feed through TIP's parser on one core,
//     against a target of 1,000,000 lines/s;
//   - load: that feed fetched into S3 and loaded into PostgreSQL by the load
//     activity, against a bare COPY of the same rows into an empty indicators
//     table (target: at most 1.5 times the COPY);
//   - refresh: a blacklist refresh of every lab source through a real worker,
//     against the slowest source refreshed alone (target: at most 1.5 times);
//   - mail: spam extraction on the lab corpus against Python's email package
//     doing the same parse (target: 10 times faster, and 5,000 mails/s);
//   - ingest: the lab's spam archive at 10,000 and 100,000 mails through a
//     worker process each, comparing their peak resident memory (the mail is
//     streamed: at most 512 bytes more per member, the 7z reader's index);
//   - agent: the spamtrap agent publishing a 100,000-mail Maildir on one core
//     (target: 5,000 mails/s);
//   - agent-pull: a collector pulling batches from an agent over loopback
//     HTTPS (target: 50 MB/s);
//   - flux scale (TestFluxScale, `make bench-flux`, about 45 minutes): 100,000
//     flux monitors at a 5-minute cadence on a `tip worker` and its probers
//     against the lab's DNS, on the production-like stack: their checks'
//     lateness (target: p99 under 30 s), every due check made, the worker's
//     memory per domain (target: under 10 KiB), the machine under 80 % busy, the
//     CPU per check and per domain-hour of the worker, the Temporal server,
//     PostgreSQL and the lab, and which of them bounds it;
//   - storage: flux checks for a month written and pruned, bytes per monitored
//     domain-month before and after (bounded by the distinct answers).
//
// They measure ratios within one run on one machine rather than pass or fail on
// absolute times, and need the real services, so they sit behind the bench build
// tag: `go test ./...` compiles only this file.
package bench
