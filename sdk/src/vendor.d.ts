// socket.io-client 2.x ships no type declarations; the SDK types the part it uses itself
// (SocketLike in client.ts).
declare module 'socket.io-client' {
  function io(url: string, options?: object): unknown;
  export default io;
}
