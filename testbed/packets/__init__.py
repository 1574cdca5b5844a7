"""Protocol codecs the lab's data planes speak: one small module per protocol, each with a
parser and a serializer, tested against bytes built by hand."""
