/// Routed hops counted three ways, for a verdict: seen by the tracer, predicted by `path`, and from the
/// reply's TTL (the responder's initial TTL minus the TTL on arrival).
public struct HopCounts: Sendable, Equatable {
    public var seen: Int
    /// nil when `path` could not predict.
    public var predicted: Int?
    public var byReplyTTL: Int?
    public var initialTTL: Int

    /// Every count there is says the same.
    public var agree: Bool { (predicted ?? seen) == seen && (byReplyTTL ?? seen) == seen }
}

/// What a probe's events say about it, against `path`'s prediction and the reply's TTL: a typed value
/// that renderers turn into words (nothing keys on a sentence). Whether it agrees is
/// `ProbeReport.agrees`.
public enum Verdict: Sendable, Equatable {
    /// Answered, and the routed hops seen, predicted and counted by the reply's TTL are the same.
    case agree(HopCounts)
    /// Answered, over a namespace `path` did not predict at that place.
    case diverged(HopCounts, wentThrough: String, predicted: String)
    /// Answered, but the reply's TTL counts other routers than the way there: the way back differs.
    case wayBackDiffers(HopCounts, back: [String])
    /// Answered, and the counts differ otherwise.
    case differ(HopCounts)
    /// The destination answered that nothing listens (ICMP port unreachable, named by `error`; or a TCP
    /// reset when `error` is nil), after the probe reached `reached`.
    case closedPort(reached: String, HopCounts, error: String?)
    /// A TCP reset, and the probe was not seen on its way.
    case reset
    /// The TTL ran out going round between namespaces (the first two named), `passes` namespace visits,
    /// the last in `expiredIn`.
    case routingLoop(between: [String], passes: Int, expiredIn: String, predicted: Bool)
    /// Time exceeded (`error`) from `from` after the hops `--ttl` allowed; `predictedThere` is where
    /// `path` put that hop when it is elsewhere.
    case ttlAsked(error: String, from: String, ttl: UInt8, predictedThere: String?)
    /// Time exceeded without a `--ttl`: fewer hops than the path has.
    case ttlExceeded(error: String, from: String)
    /// Another ICMP error about the probe.
    case icmpError(error: String, from: String)
    /// Dropped on the way: where, by which drop reason; `predictedStop` when `path` said it would stop
    /// there (why), `predictedNext` when `path` said it would go on (to where).
    case dropped(in: String, place: DropPlace?, reason: String, predictedStop: String?, predictedNext: String?)
    /// The sending namespace's own kernel refused to send it.
    case notSent(String)
    /// No answer: the probe was last seen in a namespace (leaving by `out` or arriving on `in`), with no
    /// drop seen; `predictedStop` when `path` said it would stop there (why).
    case lastSeen(in: String, leaving: String?, arriving: String?, predictedStop: String?)
    /// No answer reached the sender: the answer was last seen in a namespace.
    case answerLost(lastSeenIn: String)
    /// No answer, and the probe was not seen in any traced namespace.
    case unseen
}
