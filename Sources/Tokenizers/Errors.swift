// Errors of the Tokenizers module: one line naming the file and the bad entry.

import StrictJSON

public struct TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Small helpers to read tokenizer.json entries with errors that name the entry.
struct JSONReader {
    let file: String

    func fail(_ what: String) -> TokenizerError { TokenizerError("\(file): \(what)") }

    func string(_ v: JSONValue?, _ key: String, in entry: String) throws -> String {
        guard let s = v?[key]?.stringValue else {
            throw fail("\(entry): '\(key)' must be a string, found \(describe(v?[key]))")
        }
        return s
    }
    func optString(_ v: JSONValue?, _ key: String, in entry: String) throws -> String? {
        guard let x = v?[key], !x.isNull else { return nil }
        guard let s = x.stringValue else { throw fail("\(entry): '\(key)' must be a string, found \(describe(x))") }
        return s
    }
    func optBool(_ v: JSONValue?, _ key: String, in entry: String) throws -> Bool? {
        guard let x = v?[key], !x.isNull else { return nil }
        guard let b = x.boolValue else { throw fail("\(entry): '\(key)' must be true or false, found \(describe(x))") }
        return b
    }
    func optInt(_ v: JSONValue?, _ key: String, in entry: String) throws -> Int? {
        guard let x = v?[key], !x.isNull else { return nil }
        guard let i = x.intValue else { throw fail("\(entry): '\(key)' must be an integer, found \(describe(x))") }
        return i
    }
    func array(_ v: JSONValue?, _ key: String, in entry: String) throws -> [JSONValue] {
        guard let a = v?[key]?.arrayValue else { throw fail("\(entry): '\(key)' must be an array, found \(describe(v?[key]))") }
        return a
    }
}

func describe(_ v: JSONValue?) -> String {
    guard let v = v else { return "nothing" }
    switch v {
    case .null: return "null"
    case .bool(let b): return "\(b)"
    case .int(let i): return "\(i)"
    case .double(let d): return "\(d)"
    case .string(let s): return "'\(s.count > 40 ? String(s.prefix(40)) + "..." : s)'"
    case .array: return "an array"
    case .object: return "an object"
    }
}

/// A dictionary keyed by the exact UTF-8 bytes of a string. Swift's `String` equality and hashing
/// follow canonical equivalence ("é" == "e\u{301}"), but tokenizer vocabularies, the word cache and
/// the `tokenizers` library compare code points: two spellings are two different tokens.
struct ExactStringMap<Value> {
    struct Key: Hashable {
        let s: String
        static func == (a: Key, b: Key) -> Bool { a.s.utf8.elementsEqual(b.s.utf8) }
        func hash(into h: inout Hasher) {
            var c = s
            c.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
        }
    }
    private var d: [Key: Value] = [:]

    init() {}
    var count: Int { d.count }
    mutating func reserveCapacity(_ n: Int) { d.reserveCapacity(n) }
    mutating func removeAll() { d.removeAll(keepingCapacity: true) }

    subscript(_ s: String) -> Value? {
        get { d[Key(s: s)] }
        set { d[Key(s: s)] = newValue }
    }

    var pairs: [(String, Value)] { d.map { ($0.key.s, $0.value) } }
}
