extension Scheduler {
    /// The live instances of `app` to stop so that `keep` remain, in the order to stop them; empty when
    /// there are no more than `keep`.
    ///
    /// One at a time, it picks the instance
    /// 1. on a node that is not ready (or not among `nodes` at all) before one on a ready node: those
    ///    are going away anyway, and the ones on ready nodes serve;
    /// 2. then on the node with the most live instances of the app left, so what remains stays spread;
    /// 3. then the newest (`createdAt`), which has had the least time to prove healthy and holds the
    ///    least warm state; equal times go to the smallest allocation ID.
    /// Like `place`, the answer does not depend on the order of `nodes` or `allocations`.
    public static func scaleDown(app: String, keep: Int, nodes: [SchedulerNode], allocations: [Allocation]) -> [Allocation] {
        var live = allocations.filter { $0.app == app && $0.state.isLive }
        let ready = Set(nodes.filter { $0.readiness == .ready }.map(\.id))
        var perNode = Dictionary(grouping: live, by: \.nodeID).mapValues(\.count)
        var stop: [Allocation] = []
        while live.count > max(0, keep) {
            func key(_ a: Allocation) -> (Int, Int) { (ready.contains(a.nodeID) ? 0 : 1, perNode[a.nodeID] ?? 0) }
            guard let pick = live.indices.max(by: { i, j in
                let (a, b) = (live[i], live[j])
                if key(a) != key(b) { return key(a) < key(b) }
                if a.createdAt != b.createdAt { return a.createdAt < b.createdAt }
                return a.id > b.id
            }) else { break }
            let chosen = live.remove(at: pick)
            perNode[chosen.nodeID, default: 0] -= 1
            stop.append(chosen)
        }
        return stop
    }
}
