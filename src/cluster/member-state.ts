/**
 * A member's state in two letters, as `nodetool status` shows it: U/D (up or down, this node's
 * failure detector) then N/J/L/X (normal, joining, leaving, left).
 */
export function memberStateCode(up: boolean, status: string): string {
  const s = status === 'normal' ? 'N' : status === 'joining' ? 'J' : status === 'leaving' ? 'L' : status === 'left' ? 'X' : '?';
  return `${up ? 'U' : 'D'}${s}`;
}
