// Minimal argument handling shared by all commands: positionals, `--flag value`, `--switch`.
// Errors are `UsageError` (exit 2) with one line naming the flag.

import Foundation

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Bad input found after argument parsing (a missing model, a wrong file): printed after the
/// command's name, exit 2.
struct InputError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct Arguments {
    var command: String
    private var items: [String]

    init(command: String, _ items: [String]) { self.command = command; self.items = items }

    /// True (and consumed) when `--name` is present.
    mutating func flag(_ name: String) -> Bool {
        if let k = items.firstIndex(of: name) { items.remove(at: k); return true }
        return false
    }

    /// The value after `--name`, consumed; nil when absent.
    mutating func option(_ name: String) throws -> String? {
        if let k = items.firstIndex(of: name) {
            guard k + 1 < items.count, !items[k + 1].hasPrefix("--") || Double(items[k + 1]) != nil else {
                throw UsageError("\(command): \(name) needs a value")
            }
            let v = items[k + 1]
            items.removeSubrange(k...(k + 1))
            return v
        }
        if let k = items.firstIndex(where: { $0.hasPrefix(name + "=") }) {
            let v = String(items[k].dropFirst(name.count + 1))
            items.remove(at: k)
            return v
        }
        return nil
    }

    mutating func required(_ name: String) throws -> String {
        guard let v = try option(name) else { throw UsageError("\(command): missing \(name)") }
        return v
    }

    mutating func int(_ name: String) throws -> Int? {
        guard let s = try option(name) else { return nil }
        guard let v = Int(s) else { throw UsageError("\(command): \(name) expects an integer, found '\(s)'") }
        return v
    }

    mutating func double(_ name: String) throws -> Double? {
        guard let s = try option(name) else { return nil }
        guard let v = Double(s), v.isFinite else { throw UsageError("\(command): \(name) expects a number, found '\(s)'") }
        return v
    }

    /// Next positional argument, consumed.
    mutating func positional(_ what: String) throws -> String {
        guard let k = items.firstIndex(where: { !$0.hasPrefix("--") }) else {
            throw UsageError("\(command): missing \(what)")
        }
        return items.remove(at: k)
    }

    /// Call after reading everything: leftover arguments are an error.
    func finish() throws {
        if let extra = items.first { throw UsageError("\(command): unexpected argument '\(extra)' (see edit-cli \(command) --help)") }
    }
}

enum CLI {
    /// Help texts by command name; each command file registers its text in `helpTexts`.
    static func main(commands: [(name: String, summary: String, run: (inout Arguments) throws -> Int32)]) -> Int32 {
        var argv = Array(CommandLine.arguments.dropFirst())
        guard let name = argv.first, name != "--help", name != "-h", name != "help" else {
            printUsage(commands)
            return argv.isEmpty ? 2 : 0
        }
        argv.removeFirst()
        guard let cmd = commands.first(where: { $0.name == name }) else {
            FileHandle.standardError.write("edit-cli: unknown command '\(name)' (run edit-cli --help)\n")
            return 2
        }
        if argv.contains("--help") || argv.contains("-h") {
            print(helpTexts[name] ?? "edit-cli \(name): \(cmd.summary)")
            return 0
        }
        var args = Arguments(command: name, argv)
        do {
            return try cmd.run(&args)
        } catch {
            fflush(stdout)
            if error is UsageError {
                FileHandle.standardError.write("edit-cli \(error)\n")
            } else {
                FileHandle.standardError.write("edit-cli \(name): \(error)\n")
            }
            return 2
        }
    }

    static func printUsage(_ commands: [(name: String, summary: String, run: (inout Arguments) throws -> Int32)]) {
        print("usage: edit-cli COMMAND [options]   (edit-cli COMMAND --help for details)\n")
        for c in commands { print("  " + c.name.padding(toLength: 16, withPad: " ", startingAt: 0) + c.summary) }
    }
}

extension FileHandle {
    func write(_ s: String) { write(s.data(using: .utf8)!) } // programmer error: Swift strings are valid UTF-8
}

/// Progress lines on stderr, only when stderr is a terminal.
enum Progress {
    static let enabled = isatty(2) != 0
    static func say(_ s: String) { if enabled { FileHandle.standardError.write(s + "\n") } }
}
