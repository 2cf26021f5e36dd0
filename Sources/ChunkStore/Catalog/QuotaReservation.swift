import Foundation
import Synchronization

/// Room reserved under a bucket owner's quota for one upload (or one mount's open files), the one
/// mechanism S3, the mount and the CLI share. It grows as bytes arrive (each step checked against
/// the quota and every other live reservation in one catalog transaction, so that concurrent uploads
/// cannot together exceed it) and is released once what it covered is stored, or dropped.
public final class QuotaReservation: Sendable {
    let catalog: Catalog
    let user: Int64?
    /// Room is taken in steps of at least this many bytes, so that a stream does not write the
    /// catalog for every piece.
    let step: Int64
    private struct State {
        var id: Int64?
        var reserved: Int64 = 0
        /// The owner had no quota when last asked: not asked again before this (a quota set meanwhile
        /// binds a long-running mount within a second).
        var unlimitedUntil: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    /// `user`: the bucket's owner (nil: a bucket nobody owns, no quota).
    public init(catalog: Catalog, user: Int64?, step: Int64 = 8 << 20) {
        self.catalog = catalog
        self.user = user
        self.step = step
    }

    /// Makes sure `total` bytes are reserved; throws `quotaExceeded` when the quota has no room for them.
    public func cover(_ total: Int64) throws {
        guard let user else { return }
        try state.withLock { s in
            if let until = s.unlimitedUntil, ContinuousClock.now < until { return }
            guard total > s.reserved || s.unlimitedUntil != nil else { return }
            // A step ahead when there is room for it, else exactly what is needed.
            let generous = max(total, s.reserved + step)
            do {
                try take(generous, user: user, &s)
            } catch let error as StoreError where error.code == .quotaExceeded && generous > total {
                try take(total, user: user, &s)
            }
        }
    }

    private func take(_ total: Int64, user: Int64, _ s: inout State) throws {
        if let id = try catalog.accounts.reserveQuota(user: user, total: total, reservation: s.id) {
            s.id = id
            s.reserved = total
            s.unlimitedUntil = nil
        } else {
            s.unlimitedUntil = .now + .seconds(1)
        }
    }

    /// What is still to be stored is `total` bytes (the rest is in the catalog's usage now).
    public func shrink(to total: Int64) {
        state.withLock { s in
            guard let id = s.id, total < s.reserved else { return }
            try? catalog.accounts.shrinkReservation(id, to: total)
            s.reserved = max(0, total)
        }
    }

    public func release() {
        state.withLock { s in
            if let id = s.id { try? catalog.accounts.releaseReservation(id) }
            s = State()
        }
    }

    deinit {
        if let id = state.withLock({ $0.id }) { try? catalog.accounts.releaseReservation(id) }
    }
}
