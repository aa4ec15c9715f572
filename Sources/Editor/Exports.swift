// The editor's API speaks in the engine's and the reader's types (Recipe, HookPoint, DType, JSONValue).
@_exported import Engine
@_exported import SafeTensors
@_exported import StrictJSON
