export * from './ast.js';
export { CqlSyntaxError, type SourcePos } from './errors.js';
export { countBindMarkers } from './binds.js';
export { CQL_LIMITS, RESERVED_KEYWORDS, lwtUnsupported } from './grammar.js';
export { parseCql } from './parser.js';
export { printCql, printIdent, printTerm } from './printer.js';
export { splitStatements, onlyComments, isSelectStatement, type SplitResult } from './split.js';
