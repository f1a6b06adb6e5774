/// Ring buffer records copied out as they come, printed in order later. Records are copied into
/// chunks of 4 MiB, a chunk is freed as soon as its last record is printed, and nothing already copied
/// is ever moved: a spool that holds a whole flood costs no pause to grow or to shrink.
public struct RecordSpool {
    private struct Record { var chunk: Int; var start: Int; var length: Int }
    private static let chunkSize = 4 << 20
    private var chunks: [[UInt8]] = []
    /// Chunks before this one are freed (their slot kept empty, the indexes stay valid).
    private var firstChunk = 0
    private var records: [Record] = []
    private var next = 0

    public init() {}

    public var isEmpty: Bool { next == records.count }
    public var count: Int { records.count - next }

    public mutating func append(_ record: UnsafeRawBufferPointer) {
        if chunks.count == firstChunk || chunks[chunks.count - 1].count + record.count > Self.chunkSize {
            var chunk: [UInt8] = []
            chunk.reserveCapacity(max(Self.chunkSize, record.count))
            chunks.append(chunk)
        }
        let last = chunks.count - 1
        records.append(Record(chunk: last, start: chunks[last].count, length: record.count))
        chunks[last].append(contentsOf: record)
    }

    /// Hands up to `limit` records to `body`, oldest first.
    public mutating func take(_ limit: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        let end = min(records.count, next + limit)
        for i in next..<end {
            let r = records[i]
            chunks[r.chunk].withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[r.start..<(r.start + r.length)])) }
        }
        next = end
        // Free the chunks every remaining record is past.
        let oldest = next < records.count ? records[next].chunk : chunks.count
        while firstChunk < oldest {
            chunks[firstChunk] = []
            firstChunk += 1
        }
        if next == records.count {
            chunks.removeAll(keepingCapacity: true)
            records.removeAll(keepingCapacity: true)
            firstChunk = 0
            next = 0
        }
    }
}
