// An interpreter for the Jinja subset that real chat templates use, configured like transformers'
// `apply_chat_template` (trim_blocks, lstrip_blocks, loop controls, raise_exception, tojson without
// HTML escaping, strftime_now).
//
// Supported: text, {{ expr }}, {% if/elif/else %}, {% for x in xs [if cond] %}...{% else %} with
// `loop` (index, index0, revindex, revindex0, first, last, length, previtem, nextitem),
// {% set x = e %}, {% set ns.attr = e %}, {% set x %}...{% endset %}, {% break %}, {% continue %},
// {% macro name(a, b=default) %}...{% endmacro %} (called like a function, returns its output),
// {% generation %}, {% raw %}, {# comments #}, whitespace control {%- -%} {{- -}} and `+`.
// Expressions: literals (strings, numbers, lists, dicts, tuples, true/false/none), names,
// attribute and subscript access, slices, calls, filters, tests (`is`), `in`/`not in`, comparisons,
// and/or/not, arithmetic (+ - * / // % **), string concat `~`, conditional `a if c else b`.
// Limits: nesting depth of templates and expressions, output size and loop iterations are bounded
// and exceeding them is an error naming the limit.

import Foundation
import StrictJSON

/// A reference-typed mutable object made by `namespace(...)`.
public final class JinjaNamespace {
    public var values: [(String, JinjaValue)]
    init(_ v: [(String, JinjaValue)]) { values = v }
}

public indirect enum JinjaValue {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    case dict([(String, JinjaValue)])
    case namespace(JinjaNamespace)
    case function(String)
    /// A `{% macro %}` defined by the template.
    case macro(JinjaMacro)
    /// A bound method of a value: `"abc".upper` before the call.
    case method(JinjaValue, String)

    /// Converts parsed JSON (e.g. a message with tool calls) to a template value.
    public init(json: JSONValue) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map { JinjaValue(json: $0) })
        case .object(let p): self = .dict(p.map { ($0.0, JinjaValue(json: $0.1)) })
        }
    }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .function, .method, .macro: return true
        }
    }

    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "none"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "string"
        case .array: return "list"
        case .dict: return "dict"
        case .namespace: return "namespace"
        case .function, .method, .macro: return "function"
        }
    }
}

/// A macro of a template: parameters with optional defaults, and a body rendered at each call.
public final class JinjaMacro {
    let name: String
    let params: [(String, JExpr?)]
    let body: [JNode]
    init(name: String, params: [(String, JExpr?)], body: [JNode]) { self.name = name; self.params = params; self.body = body }
}

public final class ChatTemplate {
    public let source: String
    let file: String
    let body: [JNode]

    /// Limits (defaults are far above what real templates need).
    public var maxOutputBytes = 4 << 20
    public var maxDepth = 64
    public var maxLoopIterations = 1_000_000

    public init(source: String, file: String = "chat_template") throws {
        self.source = source
        self.file = file
        var lexer = JLexer(source: source, file: file)
        let items = try lexer.lex()
        var parser = JParser(items: items, file: file, maxDepth: 64)
        body = try parser.parseTemplate()
    }

    /// Renders with the given top-level variables (messages, add_generation_prompt, bos_token, ...).
    public func render(_ variables: [String: JinjaValue]) throws -> String {
        let ctx = JContext(file: file, maxOutput: maxOutputBytes, maxDepth: maxDepth, maxIterations: maxLoopIterations)
        ctx.scopes = [variables]
        try ctx.exec(body, depth: 0)
        return ctx.out
    }
}

// MARK: - lexer

enum JTok: Equatable {
    case name(String)
    case string(String)
    case int(Int)
    case double(Double)
    case op(String)
}

enum JItem {
    case text(String)
    case output([JTok], line: Int)
    case stmt([JTok], line: Int)
}

struct JLexer {
    let s: [UInt8]
    let file: String
    var i = 0
    var line = 1

    init(source: String, file: String) {
        var b = Array(source.utf8)
        if b.last == 0x0A { b.removeLast() } // keep_trailing_newline=False
        s = b
        self.file = file
    }

    func fail(_ m: String) -> TokenizerError { TokenizerError("\(file): line \(line): \(m)") }

    private func at(_ k: Int, _ str: String) -> Bool {
        let u = Array(str.utf8)
        guard k + u.count <= s.count else { return false }
        for j in 0..<u.count where s[k + j] != u[j] { return false }
        return true
    }

    mutating func lex() throws -> [JItem] {
        // raw pieces: text, or tag (kind, tokens, strip flags)
        enum Raw { case text([UInt8]); case tag(kind: UInt8, toks: [JTok], lminus: Bool, lplus: Bool, rminus: Bool, rplus: Bool, line: Int) }
        var raws: [Raw] = []
        var text: [UInt8] = []
        while i < s.count {
            if s[i] == UInt8(ascii: "{"), i + 1 < s.count, s[i + 1] == UInt8(ascii: "{") || s[i + 1] == UInt8(ascii: "%") || s[i + 1] == UInt8(ascii: "#") {
                let kind = s[i + 1]
                raws.append(.text(text)); text = []
                let tagLine = line
                i += 2
                var lminus = false, lplus = false
                if i < s.count && s[i] == UInt8(ascii: "-") { lminus = true; i += 1 } else if i < s.count && s[i] == UInt8(ascii: "+") { lplus = true; i += 1 }
                if kind == UInt8(ascii: "#") {
                    var rminus = false
                    while true {
                        guard i < s.count else { throw fail("unterminated comment") }
                        if at(i, "-#}") { rminus = true; i += 3; break }
                        if at(i, "#}") { i += 2; break }
                        if s[i] == 0x0A { line += 1 }
                        i += 1
                    }
                    raws.append(.tag(kind: kind, toks: [], lminus: lminus, lplus: lplus, rminus: rminus, rplus: false, line: tagLine))
                    continue
                }
                let close = kind == UInt8(ascii: "{") ? "}}" : "%}"
                var toks: [JTok] = []
                var rminus = false, rplus = false
                while true {
                    skipSpace()
                    guard i < s.count else { throw fail("unterminated tag (missing \(close))") }
                    if at(i, "-" + close) { rminus = true; i += 3; break }
                    if at(i, "+" + close) { rplus = true; i += 3; break }
                    if at(i, close) { i += 2; break }
                    toks.append(try token())
                }
                // {% raw %} ... {% endraw %}
                if kind == UInt8(ascii: "%"), toks == [.name("raw")] {
                    var body: [UInt8] = []
                    while true {
                        guard i < s.count else { throw fail("unterminated raw block") }
                        if s[i] == UInt8(ascii: "{"), at(i, "{%") {
                            var k = i + 2
                            if k < s.count && (s[k] == UInt8(ascii: "-") || s[k] == UInt8(ascii: "+")) { k += 1 }
                            while k < s.count && (s[k] == 0x20 || s[k] == 0x09) { k += 1 }
                            if at(k, "endraw") {
                                k += 6
                                while k < s.count && (s[k] == 0x20 || s[k] == 0x09) { k += 1 }
                                if at(k, "-%}") { k += 3 } else if at(k, "%}") { k += 2 } else { throw fail("bad endraw tag") }
                                i = k
                                break
                            }
                        }
                        if s[i] == 0x0A { line += 1 }
                        body.append(s[i]); i += 1
                    }
                    raws.append(.tag(kind: kind, toks: [], lminus: lminus, lplus: lplus, rminus: rminus, rplus: rplus, line: tagLine))
                    raws.append(.text(body))
                    raws.append(.tag(kind: UInt8(ascii: "#"), toks: [], lminus: false, lplus: true, rminus: false, rplus: false, line: line))
                    continue
                }
                raws.append(.tag(kind: kind, toks: toks, lminus: lminus, lplus: lplus, rminus: rminus, rplus: rplus, line: tagLine))
            } else {
                if s[i] == 0x0A { line += 1 }
                text.append(s[i]); i += 1
            }
        }
        raws.append(.text(text))

        // Whitespace control: -, lstrip_blocks, trim_blocks.
        var texts: [[UInt8]] = []
        var tags: [(kind: UInt8, toks: [JTok], lminus: Bool, lplus: Bool, rminus: Bool, rplus: Bool, line: Int)] = []
        for r in raws {
            switch r {
            case .text(let t): texts.append(t)
            case .tag(let k, let t, let lm, let lp, let rm, let rp, let l): tags.append((k, t, lm, lp, rm, rp, l))
            }
        }
        // texts[k] precedes tags[k]; texts.count == tags.count + 1
        func isWS(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C }
        // Decide lstrip_blocks on the raw text first (Jinja's lexer looks at the source).
        var lstripAt = [Int?](repeating: nil, count: tags.count)
        for (k, tag) in tags.enumerated() where tag.kind != UInt8(ascii: "{") && !tag.lminus && !tag.lplus {
            var j = texts[k].count
            while j > 0 && (texts[k][j - 1] == 0x20 || texts[k][j - 1] == 0x09) { j -= 1 }
            let atLineStart = j == 0 ? k == 0 : texts[k][j - 1] == 0x0A
            if atLineStart { lstripAt[k] = j }
        }
        for (k, tag) in tags.enumerated() {
            let isBlock = tag.kind != UInt8(ascii: "{")
            if tag.lminus {
                while let l = texts[k].last, isWS(l) { texts[k].removeLast() }
            } else if let j = lstripAt[k], j <= texts[k].count {
                texts[k].removeSubrange(j...)
            }
            if tag.rminus {
                var j = 0
                while j < texts[k + 1].count && isWS(texts[k + 1][j]) { j += 1 }
                texts[k + 1].removeFirst(j)
                if k + 1 < tags.count, let lj = lstripAt[k + 1] { lstripAt[k + 1] = max(0, lj - j) }
            } else if isBlock && !tag.rplus {
                // trim_blocks: drop the first newline after a block tag (not after `+%}`)
                var cut = 0
                if texts[k + 1].first == 0x0A { cut = 1 } else if texts[k + 1].starts(with: [0x0D, 0x0A]) { cut = 2 }
                texts[k + 1].removeFirst(cut)
                if k + 1 < tags.count, let lj = lstripAt[k + 1] { lstripAt[k + 1] = max(0, lj - cut) }
            }
        }
        var items: [JItem] = []
        for (k, tag) in tags.enumerated() {
            if !texts[k].isEmpty { items.append(.text(String(decoding: texts[k], as: UTF8.self))) }
            switch tag.kind {
            case UInt8(ascii: "{"): items.append(.output(tag.toks, line: tag.line))
            case UInt8(ascii: "%"): if !tag.toks.isEmpty { items.append(.stmt(tag.toks, line: tag.line)) }
            default: break
            }
        }
        if let last = texts.last, !last.isEmpty { items.append(.text(String(decoding: last, as: UTF8.self))) }
        return items
    }

    mutating func skipSpace() {
        while i < s.count, s[i] == 0x20 || s[i] == 0x09 || s[i] == 0x0A || s[i] == 0x0D {
            if s[i] == 0x0A { line += 1 }
            i += 1
        }
    }

    mutating func token() throws -> JTok {
        let c = s[i]
        if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
            i += 1
            var out: [UInt8] = []
            while true {
                guard i < s.count else { throw fail("unterminated string literal") }
                let d = s[i]
                if d == c { i += 1; break }
                if d == UInt8(ascii: "\\"), i + 1 < s.count {
                    let e = s[i + 1]
                    i += 2
                    switch e {
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(e)
                    default: out.append(UInt8(ascii: "\\")); out.append(e)
                    }
                    continue
                }
                if d == 0x0A { line += 1 }
                out.append(d); i += 1
            }
            return .string(String(decoding: out, as: UTF8.self))
        }
        if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
            let st = i
            while i < s.count, (s[i] >= UInt8(ascii: "0") && s[i] <= UInt8(ascii: "9")) || s[i] == UInt8(ascii: "_") { i += 1 }
            var isFloat = false
            if i + 1 < s.count, s[i] == UInt8(ascii: "."), s[i + 1] >= UInt8(ascii: "0") && s[i + 1] <= UInt8(ascii: "9") {
                isFloat = true
                i += 1
                while i < s.count, s[i] >= UInt8(ascii: "0") && s[i] <= UInt8(ascii: "9") { i += 1 }
            }
            let txt = String(decoding: s[st..<i], as: UTF8.self).replacingOccurrences(of: "_", with: "")
            if isFloat { guard let d = Double(txt) else { throw fail("bad number '\(txt)'") }; return .double(d) }
            guard let v = Int(txt) else { throw fail("integer '\(txt)' is too large") }
            return .int(v)
        }
        if c == UInt8(ascii: "_") || (c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z") {
            let st = i
            while i < s.count, s[i] == UInt8(ascii: "_") || (s[i] | 0x20) >= UInt8(ascii: "a") && (s[i] | 0x20) <= UInt8(ascii: "z") || s[i] >= UInt8(ascii: "0") && s[i] <= UInt8(ascii: "9") { i += 1 }
            return .name(String(decoding: s[st..<i], as: UTF8.self))
        }
        for op in ["//", "**", "==", "!=", "<=", ">="] where at(i, op) { i += 2; return .op(op) }
        let singles = "+-*/%~<>()[]{}.,:|="
        if singles.utf8.contains(c) { i += 1; return .op(String(UnicodeScalar(c))) }
        throw fail("unexpected character '\(String(decoding: [c], as: UTF8.self))' in a tag")
    }
}

// MARK: - AST

indirect enum JExpr {
    case literal(JinjaValue)
    case name(String)
    case list([JExpr])
    case tuple([JExpr])
    case dict([(JExpr, JExpr)])
    case attr(JExpr, String)
    case index(JExpr, JExpr)
    case slice(JExpr, JExpr?, JExpr?, JExpr?)
    case call(JExpr, [JExpr], [(String, JExpr)])
    case filter(JExpr, String, [JExpr], [(String, JExpr)])
    case test(JExpr, String, [JExpr], negated: Bool)
    case unary(String, JExpr)
    case binary(String, JExpr, JExpr)
    case cond(JExpr, JExpr, JExpr?)
}

indirect enum JNode {
    case text(String)
    case output(JExpr, line: Int)
    case ifs([(JExpr, [JNode])], [JNode], line: Int)
    case forLoop(targets: [String], iter: JExpr, cond: JExpr?, body: [JNode], elseBody: [JNode], line: Int)
    case set(target: [String], attr: String?, value: JExpr, line: Int)
    case setBlock(name: String, body: [JNode])
    case macro(JinjaMacro)
    case breakLoop, continueLoop
    case block([JNode])
}

struct JParser {
    let items: [JItem]
    let file: String
    let maxDepth: Int
    var pos = 0
    // expression-level state
    var toks: [JTok] = []
    var tp = 0
    var line = 0
    var depth = 0

    init(items: [JItem], file: String, maxDepth: Int) { self.items = items; self.file = file; self.maxDepth = maxDepth }

    func fail(_ m: String) -> TokenizerError { TokenizerError("\(file): line \(line): \(m)") }

    mutating func parseTemplate() throws -> [JNode] {
        let (nodes, end) = try parseBlock(until: [])
        if let e = end { throw fail("unexpected {% \(e) %}") }
        return nodes
    }

    /// Parses nodes until a statement whose first name is in `until`; returns that name (tokens
    /// positioned after it) or nil at the end of the template.
    mutating func parseBlock(until: Set<String>) throws -> ([JNode], String?) {
        depth += 1
        defer { depth -= 1 }
        if depth > maxDepth { throw fail("template nesting deeper than \(maxDepth)") }
        var nodes: [JNode] = []
        while pos < items.count {
            let it = items[pos]
            pos += 1
            switch it {
            case .text(let t): nodes.append(.text(t))
            case .output(let t, let l):
                toks = t; tp = 0; line = l
                let e = try expression()
                try expectEnd()
                nodes.append(.output(e, line: l))
            case .stmt(let t, let l):
                toks = t; tp = 0; line = l
                guard case .name(let kw)? = peek() else { throw fail("a statement must start with a keyword") }
                if until.contains(kw) { tp += 1; return (nodes, kw) }
                tp += 1
                nodes.append(try statement(kw, line: l))
            }
        }
        if !until.isEmpty { throw fail("missing {% \(until.sorted().joined(separator: " or ")) %} at the end of the template") }
        return (nodes, nil)
    }

    mutating func statement(_ kw: String, line l: Int) throws -> JNode {
        switch kw {
        case "if":
            var branches: [(JExpr, [JNode])] = []
            var cond = try expression()
            try expectEnd()
            var elseBody: [JNode] = []
            while true {
                let (body, end) = try parseBlock(until: ["elif", "else", "endif"])
                branches.append((cond, body))
                if end == "elif" { cond = try expression(); try expectEnd(); continue }
                if end == "else" {
                    try expectEnd()
                    let (eb, e2) = try parseBlock(until: ["endif"])
                    elseBody = eb
                    _ = e2
                }
                try expectEnd()
                break
            }
            return .ifs(branches, elseBody, line: l)
        case "for":
            var targets: [String] = []
            repeat {
                guard case .name(let n)? = next() else { throw fail("for: expected a loop variable name") }
                targets.append(n)
            } while accept(.op(","))
            guard case .name("in")? = next() else { throw fail("for: expected 'in'") }
            let iter = try orExpr(allowCond: false)
            var cond: JExpr?
            if case .name("if")? = peek() { tp += 1; cond = try expression() }
            if case .name("recursive")? = peek() { throw fail("for ... recursive is not supported") }
            try expectEnd()
            let (body, end) = try parseBlock(until: ["else", "endfor"])
            var elseBody: [JNode] = []
            if end == "else" {
                try expectEnd()
                let (eb, _) = try parseBlock(until: ["endfor"])
                elseBody = eb
            }
            try expectEnd()
            return .forLoop(targets: targets, iter: iter, cond: cond, body: body, elseBody: elseBody, line: l)
        case "set":
            guard case .name(let n)? = next() else { throw fail("set: expected a variable name") }
            var targets = [n]
            var attr: String?
            if accept(.op(".")) {
                guard case .name(let a)? = next() else { throw fail("set: expected an attribute name after '.'") }
                attr = a
            } else {
                while accept(.op(",")) {
                    guard case .name(let m)? = next() else { throw fail("set: expected a variable name") }
                    targets.append(m)
                }
            }
            if tp == toks.count {
                // block set
                guard attr == nil, targets.count == 1 else { throw fail("set block needs one plain name") }
                let (body, _) = try parseBlock(until: ["endset"])
                try expectEnd()
                return .setBlock(name: n, body: body)
            }
            guard accept(.op("=")) else { throw fail("set: expected '='") }
            let v = try expression()
            try expectEnd()
            return .set(target: targets, attr: attr, value: v, line: l)
        case "break": try expectEnd(); return .breakLoop
        case "continue": try expectEnd(); return .continueLoop
        case "macro":
            guard case .name(let name)? = next() else { throw fail("macro: expected a name") }
            try expect(.op("("), "'(' after the macro name")
            var params: [(String, JExpr?)] = []
            if !accept(.op(")")) {
                repeat {
                    guard case .name(let pn)? = next() else { throw fail("macro \(name): expected a parameter name") }
                    var dflt: JExpr?
                    if accept(.op("=")) { dflt = try expression() }
                    params.append((pn, dflt))
                } while accept(.op(","))
                try expect(.op(")"), "')'")
            }
            try expectEnd()
            let (body, _) = try parseBlock(until: ["endmacro"])
            if case .name? = peek() { tp += 1 } // {% endmacro name %}
            try expectEnd()
            return .macro(JinjaMacro(name: name, params: params, body: body))
        case "generation":
            try expectEnd()
            let (body, _) = try parseBlock(until: ["endgeneration"])
            try expectEnd()
            return .block(body)
        default:
            throw fail("{% \(kw) %} is not supported by this chat template interpreter")
        }
    }

    // token helpers
    func peek() -> JTok? { tp < toks.count ? toks[tp] : nil }
    mutating func next() -> JTok? { defer { tp += 1 }; return tp < toks.count ? toks[tp] : nil }
    mutating func accept(_ t: JTok) -> Bool { if peek() == t { tp += 1; return true }; return false }
    mutating func expect(_ t: JTok, _ what: String) throws { guard accept(t) else { throw fail("expected \(what), found \(peekDesc())") } }
    func peekDesc() -> String {
        guard let t = peek() else { return "end of tag" }
        switch t {
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string '\(s)'"
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .op(let o): return "'\(o)'"
        }
    }
    func expectEnd() throws { if tp < toks.count { throw fail("unexpected \(peekDesc()) in tag") } }
    func isName(_ n: String) -> Bool { peek() == .name(n) }

    // expressions
    mutating func expression() throws -> JExpr { try orExpr(allowCond: true) }

    mutating func enter() throws {
        depth += 1
        if depth > maxDepth * 4 { throw fail("expression nesting deeper than \(maxDepth * 4)") }
    }
    /// Left-associative chains (a + b + c, x.a.b, x|f|g) build trees as deep as they are long:
    /// each link counts as a level, so evaluating or freeing the tree cannot overflow the stack.
    mutating func link(_ links: inout Int) throws {
        links += 1
        try enter()
    }

    mutating func orExpr(allowCond: Bool) throws -> JExpr {
        try enter(); defer { depth -= 1 }
        var e = try andExpr()
        var links = 0; defer { depth -= links }
        while isName("or") { tp += 1; try link(&links); e = .binary("or", e, try andExpr()) }
        if allowCond && isName("if") {
            tp += 1
            let c = try orExpr(allowCond: false)
            var other: JExpr?
            if isName("else") { tp += 1; other = try orExpr(allowCond: true) }
            return .cond(e, c, other)
        }
        return e
    }
    mutating func andExpr() throws -> JExpr {
        var e = try notExpr()
        var links = 0; defer { depth -= links }
        while isName("and") { tp += 1; try link(&links); e = .binary("and", e, try notExpr()) }
        return e
    }
    mutating func notExpr() throws -> JExpr {
        if isName("not") { tp += 1; try enter(); defer { depth -= 1 }; return .unary("not", try notExpr()) }
        return try compare()
    }
    mutating func compare() throws -> JExpr {
        var e = try concat()
        var links = 0; defer { depth -= links }
        while true {
            if case .op(let o)? = peek(), ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                tp += 1; try link(&links); e = .binary(o, e, try concat())
            } else if isName("in") {
                tp += 1; try link(&links); e = .binary("in", e, try concat())
            } else if isName("not"), tp + 1 < toks.count, toks[tp + 1] == .name("in") {
                tp += 2; try link(&links); e = .binary("notin", e, try concat())
            } else if isName("is") {
                tp += 1; try link(&links)
                let neg = isName("not")
                if neg { tp += 1 }
                guard case .name(let tn)? = next() else { throw fail("expected a test name after 'is'") }
                var args: [JExpr] = []
                if accept(.op("(")) {
                    if !accept(.op(")")) {
                        repeat { args.append(try expression()) } while accept(.op(","))
                        try expect(.op(")"), "')'")
                    }
                } else if let t = peek(), startsPrimary(t) {
                    args.append(try concat())
                }
                e = .test(e, tn, args, negated: neg)
            } else { return e }
        }
    }
    func startsPrimary(_ t: JTok) -> Bool {
        switch t {
        case .string, .int, .double: return true
        case .name(let n): return !["and", "or", "if", "else", "is", "in", "not"].contains(n)
        default: return false
        }
    }
    mutating func concat() throws -> JExpr {
        var e = try additive()
        var links = 0; defer { depth -= links }
        while accept(.op("~")) { try link(&links); e = .binary("~", e, try additive()) }
        return e
    }
    mutating func additive() throws -> JExpr {
        var e = try multiplicative()
        var links = 0; defer { depth -= links }
        while case .op(let o)? = peek(), o == "+" || o == "-" { tp += 1; try link(&links); e = .binary(o, e, try multiplicative()) }
        return e
    }
    mutating func multiplicative() throws -> JExpr {
        var e = try unaryExpr()
        var links = 0; defer { depth -= links }
        while case .op(let o)? = peek(), ["*", "/", "//", "%"].contains(o) { tp += 1; try link(&links); e = .binary(o, e, try unaryExpr()) }
        return e
    }
    mutating func unaryExpr() throws -> JExpr {
        if case .op(let o)? = peek(), o == "-" || o == "+" {
            tp += 1; try enter(); defer { depth -= 1 }
            return .unary(o, try unaryExpr())
        }
        var e = try postfix()
        if accept(.op("**")) { try enter(); defer { depth -= 1 }; e = .binary("**", e, try unaryExpr()) }
        return e
    }
    mutating func postfix() throws -> JExpr {
        var e = try primary()
        var links = 0; defer { depth -= links }
        while true {
            if accept(.op(".")) {
                try link(&links)
                guard case .name(let n)? = next() else { throw fail("expected an attribute name after '.'") }
                e = .attr(e, n)
            } else if accept(.op("[")) {
                try link(&links)
                var parts: [JExpr?] = [nil]
                var isSlice = false
                while true {
                    if accept(.op("]")) { break }
                    if accept(.op(":")) { isSlice = true; parts.append(nil); continue }
                    parts[parts.count - 1] = try expression()
                }
                if isSlice {
                    guard parts.count <= 3 else { throw fail("a slice has at most 3 parts") }
                    e = .slice(e, parts[0], parts.count > 1 ? parts[1] : nil, parts.count > 2 ? parts[2] : nil)
                } else {
                    guard let ix = parts[0] else { throw fail("empty subscript") }
                    e = .index(e, ix)
                }
            } else if peek() == .op("(") {
                tp += 1
                try link(&links)
                let (a, kw) = try callArgs()
                e = .call(e, a, kw)
            } else if accept(.op("|")) {
                try link(&links)
                guard case .name(let f)? = next() else { throw fail("expected a filter name after '|'") }
                var a: [JExpr] = [], kw: [(String, JExpr)] = []
                if accept(.op("(")) { (a, kw) = try callArgs() }
                e = .filter(e, f, a, kw)
            } else { return e }
        }
    }
    /// After '(' : positional and keyword arguments up to ')'.
    mutating func callArgs() throws -> ([JExpr], [(String, JExpr)]) {
        var a: [JExpr] = [], kw: [(String, JExpr)] = []
        if accept(.op(")")) { return (a, kw) }
        repeat {
            if peek() == .op(")") { break }
            if case .name(let n)? = peek(), tp + 1 < toks.count, toks[tp + 1] == .op("=") {
                tp += 2; kw.append((n, try expression()))
            } else { a.append(try expression()) }
        } while accept(.op(","))
        try expect(.op(")"), "')'")
        return (a, kw)
    }
    mutating func primary() throws -> JExpr {
        try enter(); defer { depth -= 1 }
        guard let t = next() else { throw fail("unexpected end of expression") }
        switch t {
        case .string(var s):
            while case .string(let more)? = peek() { s += more; tp += 1 } // adjacent literals concatenate
            return .literal(.string(s))
        case .int(let i): return .literal(.int(i))
        case .double(let d): return .literal(.double(d))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            if accept(.op(")")) { return .tuple([]) }
            let e = try expression()
            if accept(.op(",")) {
                var items = [e]
                while peek() != .op(")") { items.append(try expression()); if !accept(.op(",")) { break } }
                try expect(.op(")"), "')'")
                return .tuple(items)
            }
            try expect(.op(")"), "')'")
            return e
        case .op("["):
            var items: [JExpr] = []
            while !accept(.op("]")) {
                items.append(try expression())
                if !accept(.op(",")) { try expect(.op("]"), "']'"); break }
            }
            return .list(items)
        case .op("{"):
            var pairs: [(JExpr, JExpr)] = []
            while !accept(.op("}")) {
                let k = try expression()
                try expect(.op(":"), "':'")
                pairs.append((k, try expression()))
                if !accept(.op(",")) { try expect(.op("}"), "'}'"); break }
            }
            return .dict(pairs)
        default:
            tp -= 1
            throw fail("unexpected \(peekDesc())")
        }
    }
}

// MARK: - interpreter

enum JControl: Error { case breakLoop, continueLoop }

final class JContext {
    let file: String
    let maxOutput: Int
    let maxDepth: Int
    let maxIterations: Int
    var scopes: [[String: JinjaValue]] = []
    var out = ""
    var line = 0
    var iterations = 0
    var callDepth = 0

    init(file: String, maxOutput: Int, maxDepth: Int, maxIterations: Int) {
        self.file = file; self.maxOutput = maxOutput; self.maxDepth = maxDepth; self.maxIterations = maxIterations
    }

    func fail(_ m: String) -> TokenizerError { TokenizerError("\(file): line \(line): \(m)") }

    func emit(_ s: String) throws {
        out += s
        if out.utf8.count > maxOutput { throw fail("output larger than \(maxOutput) bytes (limit)") }
    }

    func lookup(_ n: String) -> JinjaValue {
        for s in scopes.reversed() { if let v = s[n] { return v } }
        switch n {
        case "raise_exception", "namespace", "range", "dict", "strftime_now", "len": return .function(n)
        default: return .undefined
        }
    }

    func exec(_ nodes: [JNode], depth: Int) throws {
        if depth > maxDepth { throw fail("template nesting deeper than \(maxDepth)") }
        for n in nodes {
            switch n {
            case .text(let t): try emit(t)
            case .output(let e, let l):
                line = l
                try emit(str(try eval(e)))
            case .ifs(let branches, let elseBody, let l):
                line = l
                var done = false
                for (c, body) in branches where try eval(c).truthy {
                    try exec(body, depth: depth + 1); done = true; break
                }
                if !done { try exec(elseBody, depth: depth + 1) }
            case .forLoop(let targets, let iterE, let cond, let body, let elseBody, let l):
                line = l
                try runFor(targets, try eval(iterE), cond, body, elseBody, depth: depth)
            case .set(let targets, let attr, let valueE, let l):
                line = l
                let v = try eval(valueE)
                if let a = attr {
                    guard case .namespace(let ns) = lookup(targets[0]) else { throw fail("cannot set attribute '\(a)' of '\(targets[0])' (not a namespace)") }
                    if refers(v, to: ns, within: maxDepth) { throw fail("cannot store namespace '\(targets[0])' inside itself") }
                    try checkNesting([v])
                    if let k = ns.values.firstIndex(where: { $0.0 == a }) { ns.values[k].1 = v } else { ns.values.append((a, v)) }
                } else if targets.count == 1 {
                    scopes[scopes.count - 1][targets[0]] = v
                } else {
                    let items = try iterate(v)
                    guard items.count == targets.count else { throw fail("cannot unpack \(items.count) values into \(targets.count) names") }
                    for (t, x) in zip(targets, items) { scopes[scopes.count - 1][t] = x }
                }
            case .macro(let m):
                scopes[scopes.count - 1][m.name] = .macro(m)
            case .setBlock(let name, let body):
                let saved = out
                out = ""
                try exec(body, depth: depth + 1)
                let captured = out
                out = saved
                scopes[scopes.count - 1][name] = .string(captured)
            case .breakLoop: throw JControl.breakLoop
            case .continueLoop: throw JControl.continueLoop
            case .block(let body): try exec(body, depth: depth + 1)
            }
        }
    }

    func runFor(_ targets: [String], _ seq: JinjaValue, _ cond: JExpr?, _ body: [JNode], _ elseBody: [JNode], depth: Int) throws {
        var items: [JinjaValue]
        if case .dict(let d) = seq { items = d.map { .string($0.0) } } else { items = try iterate(seq) }
        func bind(_ x: JinjaValue, into scope: inout [String: JinjaValue]) throws {
            if targets.count == 1 { scope[targets[0]] = x; return }
            let parts = try iterate(x)
            guard parts.count == targets.count else { throw fail("cannot unpack \(parts.count) values into \(targets.count) loop variables") }
            for (t, p) in zip(targets, parts) { scope[t] = p }
        }
        if let c = cond {
            var kept: [JinjaValue] = []
            for x in items {
                var sc: [String: JinjaValue] = [:]
                try bind(x, into: &sc)
                scopes.append(sc)
                defer { scopes.removeLast() }
                if try eval(c).truthy { kept.append(x) }
            }
            items = kept
        }
        if items.isEmpty { try exec(elseBody, depth: depth + 1); return }
        let n = items.count
        for (k, x) in items.enumerated() {
            iterations += 1
            if iterations > maxIterations { throw fail("more than \(maxIterations) loop iterations (limit)") }
            var sc: [String: JinjaValue] = [:]
            try bind(x, into: &sc)
            sc["loop"] = .dict([
                ("index", .int(k + 1)), ("index0", .int(k)), ("revindex", .int(n - k)), ("revindex0", .int(n - k - 1)),
                ("first", .bool(k == 0)), ("last", .bool(k == n - 1)), ("length", .int(n)),
                ("previtem", k > 0 ? items[k - 1] : .undefined), ("nextitem", k + 1 < n ? items[k + 1] : .undefined),
            ])
            scopes.append(sc)
            defer { scopes.removeLast() }
            do { try exec(body, depth: depth + 1) } catch JControl.continueLoop { continue } catch JControl.breakLoop { break }
        }
    }

    func iterate(_ v: JinjaValue) throws -> [JinjaValue] {
        switch v {
        case .array(let a): return a
        case .dict(let d): return d.map { .string($0.0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined, .none: return []
        default: throw fail("\(v.typeName) is not iterable")
        }
    }

    // MARK: evaluation

    func eval(_ e: JExpr) throws -> JinjaValue {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let xs): let items = try xs.map { try eval($0) }; try checkNesting(items); return .array(items)
        case .tuple(let xs): let items = try xs.map { try eval($0) }; try checkNesting(items); return .array(items)
        case .dict(let ps):
            var out: [(String, JinjaValue)] = []
            for (k, v) in ps {
                guard case .string(let ks) = try eval(k) else { throw fail("dict keys must be strings") }
                let vv = try eval(v)
                if let i = out.firstIndex(where: { $0.0 == ks }) { out[i].1 = vv } else { out.append((ks, vv)) }
            }
            try checkNesting(out.map(\.1))
            return .dict(out)
        case .attr(let base, let name):
            let b = try eval(base)
            return try attribute(b, name)
        case .index(let base, let ix):
            return try subscriptValue(try eval(base), try eval(ix))
        case .slice(let base, let a, let b, let c):
            return try slice(try eval(base), try a.map { try eval($0) }, try b.map { try eval($0) }, try c.map { try eval($0) })
        case .call(let f, let args, let kw):
            let fv = try eval(f)
            let av = try args.map { try eval($0) }
            var kv: [(String, JinjaValue)] = []
            for (k, x) in kw { kv.append((k, try eval(x))) }
            return try call(fv, av, kv)
        case .filter(let base, let name, let args, let kw):
            let b = try eval(base)
            let av = try args.map { try eval($0) }
            var kv: [(String, JinjaValue)] = []
            for (k, x) in kw { kv.append((k, try eval(x))) }
            return try filter(name, b, av, kv)
        case .test(let base, let name, let args, let neg):
            let r = try test(name, try eval(base), try args.map { try eval($0) })
            return .bool(neg ? !r : r)
        case .unary(let op, let x):
            let v = try eval(x)
            switch op {
            case "not": return .bool(!v.truthy)
            case "-":
                switch v {
                case .int(let i):
                    if i == .min { throw fail("integer overflow in -") }
                    return .int(-i)
                case .double(let d): return .double(-d)
                default: throw fail("cannot negate \(v.typeName)")
                }
            default: return v
            }
        case .binary(let op, let l, let r):
            if op == "and" { let a = try eval(l); return a.truthy ? try eval(r) : a }
            if op == "or" { let a = try eval(l); return a.truthy ? a : try eval(r) }
            return try binary(op, try eval(l), try eval(r))
        case .cond(let then, let c, let other):
            if try eval(c).truthy { return try eval(then) }
            return try other.map { try eval($0) } ?? .undefined
        }
    }

    func attribute(_ b: JinjaValue, _ name: String) throws -> JinjaValue {
        switch b {
        case .dict(let d):
            if let v = d.last(where: { $0.0 == name })?.1 { return v }
            if ["items", "keys", "values", "get"].contains(name) { return .method(b, name) }
            return .undefined
        case .namespace(let ns): return ns.values.last(where: { $0.0 == name })?.1 ?? .undefined
        case .string:
            return .method(b, name)
        case .array:
            return .method(b, name)
        case .undefined: throw fail("'\(name)' of an undefined value")
        case .none: throw fail("'None' has no attribute '\(name)'")
        default: return .undefined
        }
    }

    func subscriptValue(_ b: JinjaValue, _ ix: JinjaValue) throws -> JinjaValue {
        switch (b, ix) {
        case (.array(let a), .int(let i)):
            let k = i < 0 ? a.count + i : i
            return k >= 0 && k < a.count ? a[k] : .undefined
        case (.string(let s), .int(let i)):
            let chars = Array(s.unicodeScalars) // Python indexes code points
            let k = i < 0 ? chars.count + i : i
            return k >= 0 && k < chars.count ? .string(String(chars[k])) : .undefined
        case (.dict, .string(let k)), (.namespace, .string(let k)):
            if case .dict(let d) = b { return d.last(where: { $0.0 == k })?.1 ?? .undefined }
            return try attribute(b, k)
        case (.undefined, _): throw fail("subscript of an undefined value")
        default: return .undefined
        }
    }

    func slice(_ b: JinjaValue, _ a: JinjaValue?, _ e: JinjaValue?, _ st: JinjaValue?) throws -> JinjaValue {
        func intOrNil(_ v: JinjaValue?) throws -> Int? {
            guard let v = v else { return nil }
            if case .none = v { return nil }
            guard case .int(let i) = v else { throw fail("slice indices must be integers") }
            return i
        }
        let step = try intOrNil(st) ?? 1
        guard step != 0 else { throw fail("slice step cannot be zero") }
        func pick<T>(_ xs: [T]) throws -> [T] {
            let n = xs.count
            func norm(_ i: Int?, _ dflt: Int) -> Int {
                guard var i = i else { return dflt }
                if i < 0 { i += n }
                return step > 0 ? min(max(i, 0), n) : min(max(i, -1), n - 1)
            }
            var out: [T] = []
            if step > 0 {
                var i = norm(try intOrNil(a), 0); let end = norm(try intOrNil(e), n)
                while i < end { out.append(xs[i]); i += step }
            } else {
                var i = norm(try intOrNil(a), n - 1); let end = norm(try intOrNil(e), -1)
                while i > end { out.append(xs[i]); i += step }
            }
            return out
        }
        switch b {
        case .array(let xs): return .array(try pick(xs))
        case .string(let s): return .string(String(String.UnicodeScalarView(try pick(Array(s.unicodeScalars)))))
        default: throw fail("cannot slice \(b.typeName)")
        }
    }

    func num(_ v: JinjaValue) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    func equal(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x.utf8.elementsEqual(y.utf8) // code points, like Python
        case (.none, .none), (.undefined, .undefined): return true
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dict(let x), .dict(let y)):
            return x.count == y.count && x.allSatisfy { p in y.contains { $0.0 == p.0 && equal($0.1, p.1) } }
        default:
            if let x = num(a), let y = num(b) { return x == y }
            return false
        }
    }

    func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        switch op {
        case "==": return .bool(equal(a, b))
        case "!=": return .bool(!equal(a, b))
        case "<", ">", "<=", ">=":
            var c: Int
            if case .string(let x) = a, case .string(let y) = b {
                // UTF-8 byte order is code point order (Python's string order)
                c = x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : (x.utf8.elementsEqual(y.utf8) ? 0 : 1)
            } else if let x = num(a), let y = num(b) {
                c = x < y ? -1 : (x == y ? 0 : 1)
            } else { throw fail("cannot compare \(a.typeName) and \(b.typeName) with \(op)") }
            switch op {
            case "<": return .bool(c < 0)
            case ">": return .bool(c > 0)
            case "<=": return .bool(c <= 0)
            default: return .bool(c >= 0)
            }
        case "in", "notin":
            let r: Bool
            switch b {
            case .string(let s):
                guard case .string(let x) = a else { throw fail("'in <string>' needs a string on the left, found \(a.typeName)") }
                r = x.isEmpty || s.contains(x)
            case .array(let xs): r = xs.contains { equal($0, a) }
            case .dict(let d):
                if case .string(let k) = a { r = d.contains { $0.0 == k } } else { r = false }
            case .namespace(let ns):
                if case .string(let k) = a { r = ns.values.contains { $0.0 == k } } else { r = false }
            case .undefined, .none: throw fail("'in' on \(b.typeName)")
            default: throw fail("'in' needs a string, list or dict on the right, found \(b.typeName)")
            }
            return .bool(op == "in" ? r : !r)
        case "~": return .string(str(a) + str(b))
        case "+":
            switch (a, b) {
            case (.string(let x), .string(let y)): return .string(x + y)
            case (.array(let x), .array(let y)): return .array(x + y)
            case (.int(let x), .int(let y)):
                let (r, o) = x.addingReportingOverflow(y)
                if o { throw fail("integer overflow in +") }
                return .int(r)
            default:
                if let x = num(a), let y = num(b) { return .double(x + y) }
                throw fail("cannot add \(a.typeName) and \(b.typeName)")
            }
        case "-", "*", "/", "//", "%", "**":
            if op == "*" {
                if case .string(let s) = a, case .int(let k) = b { return try repeatString(s, k) }
                if case .int(let k) = a, case .string(let s) = b { return try repeatString(s, k) }
            }
            if case .int(let x) = a, case .int(let y) = b {
                switch op {
                case "-": let (r, o) = x.subtractingReportingOverflow(y); if o { throw fail("integer overflow in -") }; return .int(r)
                case "*": let (r, o) = x.multipliedReportingOverflow(by: y); if o { throw fail("integer overflow in *") }; return .int(r)
                case "/": if y == 0 { throw fail("division by zero") }; return .double(Double(x) / Double(y))
                case "//":
                    if y == 0 { throw fail("division by zero") }
                    if x == .min && y == -1 { throw fail("integer overflow in //") }
                    var q = x / y; if (x % y != 0) && ((x < 0) != (y < 0)) { q -= 1 }; return .int(q)
                case "%":
                    if y == 0 { throw fail("modulo by zero") }
                    if y == -1 { return .int(0) } // Int.min % -1 traps in Swift; the result is 0 for every x
                    var m = x % y; if m != 0 && ((m < 0) != (y < 0)) { m += y }; return .int(m)
                default:
                    if y >= 0 && y < 64 {
                        var r = 1
                        for _ in 0..<y { let (p, o) = r.multipliedReportingOverflow(by: x); if o { throw fail("integer overflow in **") }; r = p }
                        return .int(r)
                    }
                    return .double(pow(Double(x), Double(y)))
                }
            }
            guard let x = num(a), let y = num(b) else { throw fail("cannot apply \(op) to \(a.typeName) and \(b.typeName)") }
            switch op {
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/": if y == 0 { throw fail("division by zero") }; return .double(x / y)
            case "//": if y == 0 { throw fail("division by zero") }; return .double((x / y).rounded(.down))
            case "%": if y == 0 { throw fail("modulo by zero") }; let m = x - y * (x / y).rounded(.down); return .double(m)
            default: return .double(pow(x, y))
            }
        default: throw fail("unknown operator \(op)")
        }
    }

    func repeatString(_ s: String, _ k: Int) throws -> JinjaValue {
        if k <= 0 { return .string("") }
        let (total, overflow) = s.utf8.count.multipliedReportingOverflow(by: k)
        if overflow || total > maxOutput { throw fail("string repetition larger than \(maxOutput) bytes (limit)") }
        return .string(String(repeating: s, count: k))
    }

    // MARK: calls, methods, filters, tests

    func kwarg(_ kw: [(String, JinjaValue)], _ name: String) -> JinjaValue? { kw.last(where: { $0.0 == name })?.1 }

    func call(_ f: JinjaValue, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> JinjaValue {
        switch f {
        case .function(let name):
            switch name {
            case "raise_exception":
                throw TokenizerError("\(file): raise_exception: \(args.first.map { str($0) } ?? "")")
            case "namespace":
                var vals: [(String, JinjaValue)] = []
                if case .dict(let d)? = args.first { vals = d }
                vals.append(contentsOf: kw)
                try checkNesting(vals.map(\.1))
                return .namespace(JinjaNamespace(vals))
            case "dict": try checkNesting(kw.map(\.1)); return .dict(kw)
            case "len": return try filter("length", args.first ?? .undefined, [], [])
            case "range":
                let ints = try args.map { v -> Int in guard case .int(let i) = v else { throw fail("range() needs integers") }; return i }
                var start = 0, stop = 0, step = 1
                switch ints.count {
                case 1: stop = ints[0]
                case 2: start = ints[0]; stop = ints[1]
                case 3: start = ints[0]; stop = ints[1]; step = ints[2]
                default: throw fail("range() takes 1 to 3 arguments")
                }
                guard step != 0 else { throw fail("range() step cannot be zero") }
                var out: [JinjaValue] = []
                var i = start
                while step > 0 ? i < stop : i > stop {
                    out.append(.int(i)); i += step
                    if out.count > maxIterations { throw fail("range() longer than \(maxIterations) (limit)") }
                }
                return .array(out)
            case "strftime_now":
                guard case .string(let fmt)? = args.first else { throw fail("strftime_now() needs a format string") }
                return .string(strftime(fmt, Date()))
            default: throw fail("unknown function \(name)")
            }
        case .method(let base, let name):
            return try method(base, name, args, kw)
        case .macro(let m):
            callDepth += 1
            defer { callDepth -= 1 }
            if callDepth > maxDepth { throw fail("macro calls nested deeper than \(maxDepth) (limit)") }
            var scope: [String: JinjaValue] = [:]
            guard args.count <= m.params.count else { throw fail("macro \(m.name) takes \(m.params.count) arguments, got \(args.count)") }
            for (k, (pn, dflt)) in m.params.enumerated() {
                if k < args.count { scope[pn] = args[k] } else if let v = kwarg(kw, pn) { scope[pn] = v } else if let d = dflt { scope[pn] = try eval(d) } else { scope[pn] = .undefined }
            }
            for (k, _) in kw where !m.params.contains(where: { $0.0 == k }) { throw fail("macro \(m.name) has no parameter '\(k)'") }
            let saved = out
            out = ""
            scopes.append(scope)
            defer { scopes.removeLast() }
            do { try exec(m.body, depth: callDepth) } catch { out = saved; throw error }
            let rendered = out
            out = saved
            return .string(rendered)
        case .undefined: throw fail("call of an undefined function")
        default: throw fail("\(f.typeName) is not callable")
        }
    }

    func strftime(_ fmt: String, _ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970)
        var tmv = tm()
        localtime_r(&t, &tmv)
        var buf = [Int8](repeating: 0, count: 256)
        let n = Foundation.strftime(&buf, buf.count, fmt, &tmv)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func stripChars(_ s: String, _ chars: JinjaValue?, left: Bool, right: Bool) -> String {
        var sc = Substring(s).unicodeScalars[...]
        let set: Set<Unicode.Scalar>? = {
            if case .string(let c)? = chars { return Set(c.unicodeScalars) }
            return nil
        }()
        func drop(_ u: Unicode.Scalar) -> Bool { set.map { $0.contains(u) } ?? u.properties.isWhitespace }
        if left { while let f = sc.first, drop(f) { sc.removeFirst() } }
        if right { while let l = sc.last, drop(l) { sc.removeLast() } }
        return String(String.UnicodeScalarView(sc))
    }

    func method(_ base: JinjaValue, _ name: String, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> JinjaValue {
        switch base {
        case .string(let s):
            switch name {
            case "strip": return .string(stripChars(s, args.first, left: true, right: true))
            case "lstrip": return .string(stripChars(s, args.first, left: true, right: false))
            case "rstrip": return .string(stripChars(s, args.first, left: false, right: true))
            case "upper": return .string(s.uppercased())
            case "lower": return .string(s.lowercased())
            case "title", "capitalize": return try filter(name, base, [], [])
            case "startswith", "endswith":
                var prefixes: [String] = []
                if case .string(let p)? = args.first { prefixes = [p] } else if case .array(let a)? = args.first {
                    prefixes = a.compactMap { if case .string(let p) = $0 { return p }; return nil }
                } else { throw fail("\(name)() needs a string argument") }
                let su = Array(s.utf8)
                return .bool(prefixes.contains { p in
                    let pu = Array(p.utf8)
                    return name == "startswith" ? su.starts(with: pu) : su.reversed().starts(with: pu.reversed())
                })
            case "split":
                if case .string(let sep)? = args.first {
                    guard !sep.isEmpty else { throw fail("split() separator is empty") }
                    return .array(s.components(separatedBy: sep).map { .string($0) })
                }
                // whitespace split, empty parts dropped
                return .array(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
            case "replace":
                guard args.count >= 2, case .string(let a) = args[0], case .string(let b) = args[1] else { throw fail("replace() needs two strings") }
                return .string(a.isEmpty ? s : s.replacingOccurrences(of: a, with: b))
            case "format":
                var r = s
                for a in args { if let rg = r.range(of: "{}") { r.replaceSubrange(rg, with: str(a)) } }
                return .string(r)
            case "join":
                guard case .array(let a)? = args.first else { throw fail("join() needs a list") }
                return .string(a.map { str($0) }.joined(separator: s))
            case "count":
                guard case .string(let sub)? = args.first, !sub.isEmpty else { throw fail("count() needs a non-empty string") }
                return .int(s.components(separatedBy: sub).count - 1)
            case "find":
                guard case .string(let sub)? = args.first else { throw fail("find() needs a string") }
                guard let r = s.range(of: sub) else { return .int(-1) }
                return .int(s.distance(from: s.startIndex, to: r.lowerBound))
            default: throw fail("string has no method '\(name)'")
            }
        case .dict(let d):
            switch name {
            case "items": return .array(d.map { .array([.string($0.0), $0.1]) })
            case "keys": return .array(d.map { .string($0.0) })
            case "values": return .array(d.map { $0.1 })
            case "get":
                guard case .string(let k)? = args.first else { throw fail("get() needs a string key") }
                return d.last(where: { $0.0 == k })?.1 ?? (args.count > 1 ? args[1] : .none)
            default: throw fail("dict has no method '\(name)'")
            }
        case .array(let a):
            switch name {
            case "index":
                guard let x = args.first, let k = a.firstIndex(where: { equal($0, x) }) else { throw fail("index(): value not in list") }
                return .int(k)
            case "count": return .int(a.filter { equal($0, args.first ?? .undefined) }.count)
            default: throw fail("list has no method '\(name)'")
            }
        default: throw fail("\(base.typeName) has no method '\(name)'")
        }
    }

    func filter(_ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> JinjaValue {
        switch name {
        case "trim":
            guard case .string(let s) = v else { return .string(stripChars(str(v), nil, left: true, right: true)) }
            return .string(stripChars(s, args.first, left: true, right: true))
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .array(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw fail("length of \(v.typeName)")
            }
        case "upper": return .string(str(v).uppercased())
        case "lower": return .string(str(v).lowercased())
        case "capitalize":
            let s = str(v)
            guard let f = s.first else { return .string("") }
            return .string(String(f).uppercased() + s.dropFirst().lowercased())
        case "title":
            var out = "", prevAlnum = false
            for c in str(v) {
                out += prevAlnum ? c.lowercased() : c.uppercased()
                prevAlnum = c.isLetter || c.isNumber
            }
            return .string(out)
        case "default", "d":
            let dflt = args.first ?? kwarg(kw, "default_value") ?? .string("")
            let boolean: Bool = {
                if args.count > 1, case .bool(let b) = args[1] { return b }
                if case .bool(let b)? = kwarg(kw, "boolean") { return b }
                return false
            }()
            if case .undefined = v { return dflt }
            if boolean && !v.truthy { return dflt }
            return v
        case "tojson":
            var indent: Int? = nil
            if case .int(let i)? = args.first ?? kwarg(kw, "indent") {
                // Python pads with ' ' * indent (nothing when negative); a huge indent would
                // allocate before the output limit is checked.
                guard i <= 1024 else { throw fail("tojson indent \(i) is larger than 1024 (limit)") }
                indent = max(0, i)
            }
            var out = ""
            try toJSON(v, indent: indent, level: 0, into: &out)
            return .string(out)
        case "string": return .string(str(v))
        case "int":
            switch v {
            case .int: return v
            case .double(let d): return d.isFinite ? .int(Int(d)) : .int(0)
            case .string(let s): return .int(Int(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            case .bool(let b): return .int(b ? 1 : 0)
            default: return .int(0)
            }
        case "float": return .double(num(v) ?? Double(str(v)) ?? 0)
        case "abs":
            if case .int(let i) = v { return .int(abs(i)) }
            return .double(abs(num(v) ?? 0))
        case "first": return try iterate(v).first ?? .undefined
        case "last": return try iterate(v).last ?? .undefined
        case "list": return .array(try iterate(v))
        case "reverse":
            if case .string(let s) = v { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .array(try iterate(v).reversed())
        case "join":
            let sep: String = { if case .string(let s)? = args.first { return s }; return "" }()
            var items = try iterate(v)
            if case .string(let attr)? = kwarg(kw, "attribute") { items = try items.map { try attribute($0, attr) } }
            return .string(items.map { str($0) }.joined(separator: sep))
        case "replace":
            guard args.count >= 2, case .string(let a) = args[0], case .string(let b) = args[1] else { throw fail("replace filter needs two strings") }
            let s = str(v)
            return .string(a.isEmpty ? s : s.replacingOccurrences(of: a, with: b))
        case "items":
            guard case .dict(let d) = v else { if case .undefined = v { return .array([]) }; throw fail("items of \(v.typeName)") }
            return .array(d.map { .array([.string($0.0), $0.1]) })
        case "map":
            let items = try iterate(v)
            if case .string(let attr)? = kwarg(kw, "attribute") {
                return .array(try items.map { x -> JinjaValue in
                    let r = try attribute(x, attr)
                    if case .undefined = r, let d = kwarg(kw, "default") { return d }
                    return r
                })
            }
            guard case .string(let f)? = args.first else { throw fail("map needs a filter name or attribute=") }
            return .array(try items.map { try filter(f, $0, Array(args.dropFirst()), []) })
        case "selectattr", "rejectattr":
            guard case .string(let attr)? = args.first else { throw fail("\(name) needs an attribute name") }
            let items = try iterate(v)
            var out: [JinjaValue] = []
            for x in items {
                let a = try attribute(x, attr)
                var ok: Bool
                if args.count >= 2, case .string(let tn) = args[1] { ok = try test(tn, a, Array(args.dropFirst(2))) } else { ok = a.truthy }
                if name == "rejectattr" { ok = !ok }
                if ok { out.append(x) }
            }
            return .array(out)
        case "select", "reject":
            let items = try iterate(v)
            var out: [JinjaValue] = []
            for x in items {
                var ok: Bool
                if case .string(let tn)? = args.first { ok = try test(tn, x, Array(args.dropFirst())) } else { ok = x.truthy }
                if name == "reject" { ok = !ok }
                if ok { out.append(x) }
            }
            return .array(out)
        case "unique":
            var out: [JinjaValue] = []
            for x in try iterate(v) where !out.contains(where: { equal($0, x) }) { out.append(x) }
            return .array(out)
        case "indent":
            let width: Int = { if case .int(let w)? = args.first ?? kwarg(kw, "width") { return w }; return 4 }()
            let first: Bool = { if case .bool(let b)? = (args.count > 1 ? args[1] : kwarg(kw, "first")) { return b }; return false }()
            let lines = str(v).components(separatedBy: "\n")
            let (padTotal, o) = max(0, width).multipliedReportingOverflow(by: lines.count)
            if o || padTotal > maxOutput { throw fail("indent width \(width) makes output larger than \(maxOutput) bytes (limit)") }
            let pad = String(repeating: " ", count: max(0, width))
            var out: [String] = []
            for (k, l) in lines.enumerated() {
                if k == 0 { out.append(first ? pad + l : l) } else { out.append(l.isEmpty ? l : pad + l) }
            }
            return .string(out.joined(separator: "\n"))
        case "round":
            let d = num(v) ?? 0
            let p: Int = { if case .int(let k)? = args.first ?? kwarg(kw, "precision") { return k }; return 0 }()
            let m = pow(10.0, Double(p))
            return .double((d * m).rounded(.toNearestOrEven) / m)
        case "safe", "e", "escape": return v
        case "dictsort":
            guard case .dict(let d) = v else { throw fail("dictsort of \(v.typeName)") }
            return .array(d.sorted { $0.0 < $1.0 }.map { .array([.string($0.0), $0.1]) })
        case "sort":
            let items = try iterate(v)
            return .array(try items.sorted { a, b in
                if case .bool(true) = try binary("<", a, b) { return true }
                return false
            })
        default:
            throw fail("filter '\(name)' is not supported")
        }
    }

    func test(_ name: String, _ v: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        switch name {
        case "defined": if case .undefined = v { return false }; return true
        case "undefined": if case .undefined = v { return true }; return false
        case "none": if case .none = v { return true }; return false
        case "string": if case .string = v { return true }; return false
        case "number": switch v { case .int, .double: return true; default: return false }
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "mapping": switch v { case .dict, .namespace: return true; default: return false }
        case "sequence", "iterable": switch v { case .array, .string, .dict: return true; default: return false }
        case "callable": switch v { case .function, .method, .macro: return true; default: return false }
        case "odd", "even":
            guard case .int(let i) = v else { throw fail("\(name) test needs an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard case .int(let i) = v, case .int(let k)? = args.first, k != 0 else { throw fail("divisibleby needs integers") }
            return i % k == 0
        case "eq", "equalto", "==": return equal(v, args.first ?? .undefined)
        case "ne", "!=": return !equal(v, args.first ?? .undefined)
        case "in": return try binary("in", v, args.first ?? .undefined).truthy
        default: throw fail("test '\(name)' is not supported")
        }
    }

    // MARK: output formatting (Python str / repr)

    /// Values built at run time (a loop wrapping a list in a list) nest at most maxDepth deep:
    /// printing, comparing or freeing them recurses once per level.
    func checkNesting(_ items: [JinjaValue]) throws {
        func deeper(_ v: JinjaValue, _ budget: Int) -> Bool {
            if budget < 0 { return true }
            switch v {
            case .array(let a): return a.contains { deeper($0, budget - 1) }
            case .dict(let d): return d.contains { deeper($0.1, budget - 1) }
            case .namespace(let ns): return ns.values.contains { deeper($0.1, budget - 1) }
            case .method(let b, _): return deeper(b, budget - 1)
            default: return false
            }
        }
        if items.contains(where: { deeper($0, maxDepth - 1) }) { throw fail("value nesting deeper than \(maxDepth) (limit)") }
    }

    /// Whether `v` holds the namespace `ns` (a cycle would make printing it recurse forever).
    func refers(_ v: JinjaValue, to ns: JinjaNamespace, within budget: Int) -> Bool {
        if budget < 0 { return true }
        switch v {
        case .namespace(let n): return n === ns || n.values.contains { refers($0.1, to: ns, within: budget - 1) }
        case .array(let a): return a.contains { refers($0, to: ns, within: budget - 1) }
        case .dict(let d): return d.contains { refers($0.1, to: ns, within: budget - 1) }
        case .method(let b, _): return refers(b, to: ns, within: budget - 1)
        default: return false
        }
    }

    func str(_ v: JinjaValue) -> String {
        switch v {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr(v)
        }
    }

    func repr(_ v: JinjaValue) -> String {
        switch v {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return pyFloat(d)
        case .string(let s): return pyRepr(s)
        case .array(let a): return "[" + a.map { repr($0) }.joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.map { pyRepr($0.0) + ": " + repr($0.1) }.joined(separator: ", ") + "}"
        case .namespace(let ns): return "<Namespace " + ns.values.map { "\($0.0)=\(repr($0.1))" }.joined(separator: ", ") + ">"
        case .function(let n), .method(_, let n): return "<function \(n)>"
        case .macro(let m): return "<Macro '\(m.name)'>"
        }
    }

    func pyFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        if d == d.rounded() && abs(d) < 1e16 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    func pyRepr(_ s: String) -> String {
        let q: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(q)
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(u) == q { out += "\\" + String(q) } else if u.value < 0x20 || u.value == 0x7F {
                    out += String(format: "\\x%02x", u.value)
                } else { out.unicodeScalars.append(u) }
            }
        }
        out.append(q)
        return out
    }

    /// A JSON string as Python's json.dumps(ensure_ascii=False) writes it.
    func pyJSONString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0..<0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }

    /// Python json.dumps(ensure_ascii=False) with default separators (", " and ": ").
    func toJSON(_ v: JinjaValue, indent: Int?, level: Int, into out: inout String) throws {
        if level > maxDepth { throw fail("tojson: nesting deeper than \(maxDepth)") }
        let nl: String = indent.map { "\n" + String(repeating: " ", count: $0 * (level + 1)) } ?? ""
        let nlEnd: String = indent.map { "\n" + String(repeating: " ", count: $0 * level) } ?? ""
        let sep = indent == nil ? ", " : ","
        switch v {
        case .undefined, .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? pyFloat(d) : (d.isNaN ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"))
        case .string(let s): pyJSONString(s, into: &out)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (k, x) in a.enumerated() {
                if k > 0 { out += sep }
                out += nl
                try toJSON(x, indent: indent, level: level + 1, into: &out)
            }
            out += nlEnd + "]"
        case .dict(let d):
            if d.isEmpty { out += "{}"; return }
            out += "{"
            for (k, (key, x)) in d.enumerated() {
                if k > 0 { out += sep }
                out += nl
                pyJSONString(key, into: &out)
                out += ": "
                try toJSON(x, indent: indent, level: level + 1, into: &out)
            }
            out += nlEnd + "}"
        case .namespace(let ns): try toJSON(.dict(ns.values), indent: indent, level: level, into: &out)
        case .function, .method, .macro: throw fail("tojson: a function is not JSON serializable")
        }
    }
}
