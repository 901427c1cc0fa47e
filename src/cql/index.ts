export * from './ast.js';
export { CqlSyntaxError, type SourcePos } from './errors.js';
export { CQL_LIMITS, RESERVED_KEYWORDS, countBindMarkers, lwtUnsupported, parseCql } from './parser.js';
export { printCql, printIdent, printTerm } from './printer.js';
