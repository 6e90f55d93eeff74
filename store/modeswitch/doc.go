// Package modeswitch is the mode-switch protocol: how a live namespace
// moves between eventual (last-writer-wins replicas on every store) and
// strong (a Raft group), losing no acknowledged write and never accepting
// writes under two modes at once.
//
// Who does what. The table (the static meta group, or PD) decides each
// namespace's row: its mode and an epoch that grows with every switch. The
// Driver (driver.go), running where the table is decided, brings the
// namespace's group to the row, step by step. Each store decides from its
// own row and its own replica of the group whether it serves a call
// (namespace.Decide). The group's replicas apply the steps (Step, in
// steps.go; the data they move is written by package nsgroup in the same
// apply batch as the state). A store checks every step that reaches it
// from the network before proposing it (CheckStep, in check.go).
//
// The group's switch state (storepb.GroupState) holds epochs: the group is
// active (serves CAS and linearizable reads) while active_epoch >
// fenced_epoch. Every step is idempotent and guarded by epochs and a load
// id, so a driver that restarts, or a new table leader, just resumes.
//
// # eventual -> strong (epoch E)
//
//  1. Fence raw writes. Each store applies the strong row of epoch E; from
//     then on Decide refuses raw writes there, and the row's write fence
//     (modetable) has waited for those in flight. A store reports this
//     (SwitchStatus) only once the row is durable, so a crash cannot bring
//     back the old row after the report. Invariant: once a store has
//     reported fenced, it never accepts a raw write under epoch < E.
//  2. Merge. The driver waits until every store has reported fenced, then
//     dumps every store's LWW records and keeps, per key, the greatest
//     (tombstones included). A store it cannot reach holds the switch (it
//     may have writes nobody else has) unless the row says force.
//     Invariant: every raw write acknowledged before the fences is in the
//     merge (forced switches excepted, as the operator was told).
//  3. Load. LoadBegin(E, id) clears the group's keys (only while not
//     active); LoadBatch(E, id) adds merged records; each replica counts
//     them. Invariant: data enters a group only while it is not active.
//  4. Activate(E, id, count) activates the group only if load id received
//     exactly count records, so a stale driver's partial load never
//     activates. Invariant: strong operations are served only from a
//     complete merged state.
//
// A namespace switched away and back before its group was fenced is still
// active: Activate(E) without a load continues it at the new epoch.
//
// # strong -> eventual (epoch E)
//
//  1. Fence. The driver proposes Fence(E) to the group; the store that
//     proposes it stamps it with its own clock. Every replica that applies
//     it converts the strong state at that log position into LWW records,
//     all at one timestamp (FenceTimestamp: the stamp, raised above every
//     record loaded into or converted out of the group before), in the same
//     apply batch as the state. Invariant: every strong write the group
//     applied is before the fence in the log, so it is in the conversion;
//     none is applied after it (the group is no longer active).
//  2. Serve raw writes. A store accepts raw writes once its own replica has
//     applied the fence (namespace.Decide), and stamps them after the fence
//     timestamp (its clock is moved past it, within the maximum offset).
//     Invariant: a raw write after the switch wins over the converted
//     record of its key.
//
// A replica that installs a snapshot of a fenced group redoes the
// conversion of that snapshot's state (NeedsConversion): it may not have
// applied the fence itself. It never converts a state into which a load has
// begun since the fence.
package modeswitch
