// Chat templates must render exactly as transformers' apply_chat_template (jinja2 3.1.6) does,
// and raise_exception must surface the template's message.

import Foundation
import StrictJSON
import XCTest
@testable import Tokenizers

final class ChatTemplateTests: XCTestCase {
    func testGoldenRenders() throws {
        let g = try Fixtures.json("chat_goldens.json")
        let featuresSource = try XCTUnwrap(g["features_template"]?.stringValue)
        let features = try ChatTemplate(source: featuresSource)
        let cases = try XCTUnwrap(g["cases"]?.arrayValue)
        XCTAssertGreaterThan(cases.count, 40)
        var rendered = 0, raised = 0
        for c in cases {
            let name = try XCTUnwrap(c["fixture"]?.stringValue)
            let tok = try Fixtures.tokenizer(name)
            let gen = try XCTUnwrap(c["add_generation_prompt"]?.boolValue)
            let messages: [[String: String]] = try XCTUnwrap(c["messages"]?.arrayValue).map { m in
                Dictionary(uniqueKeysWithValues: (m.objectPairs ?? []).map { ($0.0, $0.1.stringValue ?? "") })
            }
            let saved = tok.chatTemplate
            if c["template"]?.stringValue == "features" { tok.chatTemplate = features }
            defer { tok.chatTemplate = saved }
            if let want = c["rendered"]?.stringValue {
                let got = try tok.applyChatTemplate(messages: messages, addGenerationPrompt: gen)
                XCTAssertEqual(got, want, "\(name) \(c["template"]?.stringValue ?? "own template") gen=\(gen) \(messages)")
                rendered += 1
            } else {
                let msg = try XCTUnwrap(c["error"]?.stringValue)
                XCTAssertThrowsError(try tok.applyChatTemplate(messages: messages, addGenerationPrompt: gen)) { e in
                    XCTAssertTrue("\(e)".hasSuffix("raise_exception: " + msg), "\(name): got error \(e)")
                }
                raised += 1
            }
        }
        XCTAssertGreaterThan(rendered, 30)
        XCTAssertGreaterThan(raised, 4)
    }

    func testSmolLM2TemplateFromDirectory() throws {
        // chat_template.jinja is not in the fixture folder; the template comes from tokenizer_config.json
        let tok = try Fixtures.tokenizer("smollm2")
        let out = try tok.applyChatTemplate(messages: [["role": "user", "content": "Hi"]], addGenerationPrompt: true)
        XCTAssertTrue(out.hasSuffix("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), out)
        // and it tokenizes with the special tokens as single ids
        let ids = tok.encode(out)
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.filter { $0 == 1 }.count, 3)
    }

    func render(_ src: String, _ vars: [String: JinjaValue] = [:]) throws -> String {
        try ChatTemplate(source: src).render(vars)
    }

    func testExpressionsAndWhitespaceControl() throws {
        XCTAssertEqual(try render("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 / 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}"), "7|9|3.5|-4|2|1024")
        XCTAssertEqual(try render("{{ 'a' if x else 'b' }}{{ 'c' if not x }}", ["x": .bool(false)]), "bc")
        XCTAssertEqual(try render("  {%- if true -%}  yes  {%- endif -%}  !"), "yes!")
        XCTAssertEqual(try render("a\n    {% if true %}\nb\n    {% endif %}\nc"), "a\nb\nc")
        XCTAssertEqual(try render("{{ 'x' }}\n{{ 'y' }}"), "x\ny")
        XCTAssertEqual(try render("{# comment #}z{{ [1, 'a', none, true, 1.5] }}"), "z[1, 'a', None, True, 1.5]")
        XCTAssertEqual(try render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", ["d": .dict([("a", .int(1)), ("b", .int(2))])]), "a=1;b=2;")
        XCTAssertEqual(try render("{% for x in xs if x > 1 %}{{ loop.index }}:{{ x }}{% if not loop.last %},{% endif %}{% else %}none{% endfor %}",
                                  ["xs": .array([.int(1), .int(2), .int(3)])]), "1:2,2:3")
        XCTAssertEqual(try render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty")
        XCTAssertEqual(try render("{% for x in range(5) %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}"), "02")
        XCTAssertEqual(try render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1", "set in a loop does not leak")
        XCTAssertEqual(try render("{% set ns = namespace(x=1) %}{% for i in [1] %}{% set ns.x = 2 %}{% endfor %}{{ ns.x }}"), "2")
        XCTAssertEqual(try render("{% set b %}in{{ 1 }}{% endset %}[{{ b }}]"), "[in1]")
        XCTAssertEqual(try render("{{ '  Hi There '.strip().lower().replace('hi', 'yo') ~ '|' ~ 'a-b-c'.split('-')|join('+') }}"), "yo there|a+b+c")
        XCTAssertEqual(try render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'b' in 'abc' }} {{ 'z' not in ['a'] }}"), "True True True True")
        XCTAssertEqual(try render("{{ x is defined }} {{ y is not defined }} {{ none is none }} {{ 3 is odd }} {{ 'a' is string }}", ["x": .int(1)]), "True True True True True")
        XCTAssertEqual(try render("{{ m.content }}{{ m['role'] }}{{ m.missing | default('d') }}", ["m": .dict([("content", .string("c")), ("role", .string("r"))])]), "crd")
        XCTAssertEqual(try render("{{ 'abcdef'[1:4] }}{{ [1,2,3][::-1] }}{{ 'abc'[-1] }}"), "bcd[3, 2, 1]c")
        XCTAssertEqual(try render("{{ {'a': [1, 'é'], 'b': none} | tojson }}"), "{\"a\": [1, \"é\"], \"b\": null}")
        XCTAssertEqual(try render("{{ {'a': 1} | tojson(indent=2) }}"), "{\n  \"a\": 1\n}")
        XCTAssertEqual(try render("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}",
                                  ["msgs": .array([.dict([("role", .string("user")), ("content", .string("q"))]),
                                                   .dict([("role", .string("assistant")), ("content", .string("a"))])])]), "['q']")
        XCTAssertEqual(try render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}")
        XCTAssertEqual(try render("{% macro item(x, sep=', ') %}<{{ x }}>{{ sep }}{% endmacro %}{{ item(1) }}{{ item(2, sep=';') }}{{ item('z', '!') }}"), "<1>, <2>;<z>!")
        // strings are sequences of code points, as in Python
        XCTAssertEqual(try render("{{ s|length }} {{ s[1] }} {{ s[::-1]|length }} {{ s == t }}", ["s": .string("e\u{301}x"), "t": .string("\u{E9}x")]), "3 \u{301} 3 False")
        XCTAssertEqual(try render("{{ \"it's\" }} {{ 'say \"x\"' | string }} {{ ['it\\'s'] }}"), "it's say \"x\" [\"it's\"]")
    }

    func testErrorsNameTheProblem() {
        XCTAssertThrowsError(try render("{% if x %}unclosed")) { XCTAssertTrue("\($0)".contains("missing {% elif or else or endif %}"), "\($0)") }
        XCTAssertThrowsError(try render("{% call m() %}{% endcall %}")) { XCTAssertTrue("\($0)".contains("{% call %} is not supported"), "\($0)") }
        XCTAssertThrowsError(try render("{{ x | frobnicate }}")) { XCTAssertTrue("\($0)".contains("filter 'frobnicate' is not supported"), "\($0)") }
        XCTAssertThrowsError(try render("{{ raise_exception('bad input') }}")) { XCTAssertTrue("\($0)".hasSuffix("raise_exception: bad input"), "\($0)") }
        XCTAssertThrowsError(try render("line1\n{{ undefined_thing.attr }}")) { XCTAssertTrue("\($0)".contains("line 2"), "\($0)") }
        XCTAssertThrowsError(try render("{{ 1 +")) { XCTAssertTrue("\($0)".contains("unterminated tag"), "\($0)") }
    }

    func testResourceLimits() throws {
        // deep nesting of blocks
        let deep = String(repeating: "{% if true %}", count: 200) + "x" + String(repeating: "{% endif %}", count: 200)
        XCTAssertThrowsError(try render(deep)) { XCTAssertTrue("\($0)".contains("nesting deeper than"), "\($0)") }
        // runaway macro recursion
        XCTAssertThrowsError(try render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")) { XCTAssertTrue("\($0)".contains("macro calls nested deeper than"), "\($0)") }
        // deep nesting of expressions
        let deepExpr = "{{ " + String(repeating: "(", count: 1000) + "1" + String(repeating: ")", count: 1000) + " }}"
        XCTAssertThrowsError(try render(deepExpr)) { XCTAssertTrue("\($0)".contains("nesting deeper than"), "\($0)") }
        // output size
        let t = try ChatTemplate(source: "{% for i in range(100000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}")
        t.maxOutputBytes = 1 << 20
        XCTAssertThrowsError(try t.render([:])) { XCTAssertTrue("\($0)".contains("output larger than 1048576 bytes"), "\($0)") }
        XCTAssertThrowsError(try render("{{ 'x' * 100000000 }}")) { XCTAssertTrue("\($0)".contains("limit"), "\($0)") }
        // loop iterations
        let l = try ChatTemplate(source: "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}")
        l.maxLoopIterations = 10_000
        XCTAssertThrowsError(try l.render([:])) { XCTAssertTrue("\($0)".contains("loop iterations"), "\($0)") }
    }
}
