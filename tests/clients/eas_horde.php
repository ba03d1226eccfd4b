<?php
/*
 * One ActiveSync command, encoded and decoded by Horde's WBXML codec
 * (Debian's php-horde-activesync), not by sitemail's.
 *
 * Reads a JSON request on stdin:
 *   {"url": ..., "resolve": "host:port:address", "ca": CA file,
 *    "user": "contoso\\adam", "password": ..., "mailbox": "adam",
 *    "device_id": ..., "device_type": ..., "version": "14.1",
 *    "policy_key": optional, "cmd": "Sync", "method": "POST" or "OPTIONS",
 *    "body": TREE or null}
 * and writes {"status": HTTP status, "headers": {lower-case name: value},
 * "body": TREE or null, "length": body bytes} on stdout.
 *
 * A TREE is [tag, child, ...] with Horde's own tag names ("Synchronize",
 * "Folders", "POOMMAIL:Subject", "ComposeMail:Mime" ...): a child is a TREE,
 * a string (text), or {"opaque": base64} (WBXML OPAQUE data, at most 127
 * bytes: see encode_tree).  An element
 * without children is written as an empty tag.  In a decoded answer,
 * content that is not UTF-8 comes back as {"base64": ...}, and a token that
 * Horde's code pages do not know fails the script.
 */

spl_autoload_register(function ($class) {
    // PEAR naming: Horde_ActiveSync_Wbxml_Encoder -> Horde/ActiveSync/Wbxml/Encoder.php
    $file = '/usr/share/php/' . str_replace('_', '/', $class) . '.php';
    if (is_file($file)) {
        require_once $file;
    }
});

function fail($message)
{
    fwrite(STDERR, "eas_horde.php: $message\n");
    exit(2);
}

function is_utf8($text)
{
    return preg_match('//u', $text) === 1;  // php-mbstring is not needed for this
}

function encode_tree($encoder, $node)
{
    $tag = $node[0];
    $children = array_slice($node, 1);
    if (!$children) {
        // Horde's encoder drops a start tag that never gets content unless forced out.
        $encoder->startTag($tag, false, true);
        return;
    }
    $encoder->startTag($tag);
    foreach ($children as $child) {
        if (is_string($child)) {
            $encoder->content($child);
        } elseif (is_array($child) && isset($child['opaque'])) {
            $data = base64_decode($child['opaque']);
            if (strlen($data) > 127) {
                // Horde's _outMBUInt writes a length's 7-bit groups least significant
                // first (WBXML 1.3 section 5.1 wants the most significant first), so only
                // a one-byte length is right: send longer data as text instead.
                fail('Horde writes an OPAQUE length over 127 wrongly; send the data as text');
            }
            $encoder->content($data, true);
        } elseif (is_array($child)) {
            encode_tree($encoder, $child);
        } else {
            fail('a child is neither a tree, a string nor {"opaque": ...}');
        }
    }
    $encoder->endTag();
}

function encode_body($tree)
{
    $out = fopen('php://temp', 'w+');
    $encoder = new Horde_ActiveSync_Wbxml_Encoder($out);
    $encoder->startWBXML();
    encode_tree($encoder, $tree);
    rewind($out);
    return stream_get_contents($out);
}

function decode_body($data)
{
    $in = fopen('php://temp', 'w+');
    fwrite($in, $data);
    rewind($in);
    $decoder = new Horde_ActiveSync_Wbxml_Decoder($in);
    $decoder->readWbxmlHeader();
    if (!$decoder->isWbxml()) {
        fail('the answer is not WBXML');
    }
    $root = null;
    $stack = array();
    while (($token = $decoder->getToken()) !== false && $token) {
        $type = $token[Horde_ActiveSync_Wbxml::EN_TYPE];
        if ($type == Horde_ActiveSync_Wbxml::EN_TYPE_STARTTAG) {
            $tag = $token[Horde_ActiveSync_Wbxml::EN_TAG];
            if ($tag === false) {
                fail('the answer holds a token that is not in Horde\'s code pages');
            }
            $node = array($tag);
            if ($token[Horde_ActiveSync_Wbxml::EN_FLAGS] & Horde_ActiveSync_Wbxml::EN_FLAGS_CONTENT) {
                $stack[] = $node;
                continue;
            }
        } elseif ($type == Horde_ActiveSync_Wbxml::EN_TYPE_ENDTAG) {
            if (!$stack) {
                fail('an END without an open element');
            }
            $node = array_pop($stack);
        } else {
            if (!$stack) {
                fail('content outside an element');
            }
            $text = $token[Horde_ActiveSync_Wbxml::EN_CONTENT];
            $stack[count($stack) - 1][] = is_utf8($text)
                ? $text : array('base64' => base64_encode($text));
            continue;
        }
        if ($stack) {
            $stack[count($stack) - 1][] = $node;
        } else {
            $root = $node;
        }
    }
    if ($stack || $root === null) {
        fail('the answer ends inside an element');
    }
    return $root;
}

$request = json_decode(stream_get_contents(STDIN), true);
if (!is_array($request)) {
    fail('stdin is not a JSON object');
}
$method = isset($request['method']) ? $request['method'] : 'POST';
$url = $request['url'];
if ($method == 'POST') {
    $url .= '?' . http_build_query(array(
        'Cmd' => $request['cmd'],
        'User' => $request['mailbox'],
        'DeviceId' => $request['device_id'],
        'DeviceType' => $request['device_type'],
    ));
}
$headers = array('MS-ASProtocolVersion: ' . $request['version']);
if (!empty($request['policy_key'])) {
    $headers[] = 'X-MS-PolicyKey: ' . $request['policy_key'];
}
$curl = curl_init($url);
curl_setopt_array($curl, array(
    CURLOPT_CUSTOMREQUEST => $method,
    CURLOPT_RESOLVE => array($request['resolve']),
    CURLOPT_CAINFO => $request['ca'],
    CURLOPT_HTTPAUTH => CURLAUTH_BASIC,
    CURLOPT_USERPWD => $request['user'] . ':' . $request['password'],
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_TIMEOUT => 60,
));
if ($method == 'POST') {
    $headers[] = 'Content-Type: application/vnd.ms-sync.wbxml';
    curl_setopt($curl, CURLOPT_POSTFIELDS,
        $request['body'] === null ? '' : encode_body($request['body']));
}
curl_setopt($curl, CURLOPT_HTTPHEADER, $headers);
$answer_headers = array();
curl_setopt($curl, CURLOPT_HEADERFUNCTION, function ($curl, $line) use (&$answer_headers) {
    $parts = explode(':', $line, 2);
    if (count($parts) == 2) {
        $answer_headers[strtolower(trim($parts[0]))] = trim($parts[1]);
    }
    return strlen($line);
});
$data = curl_exec($curl);
if ($data === false) {
    fail('curl: ' . curl_error($curl));
}
$status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
$type = isset($answer_headers['content-type']) ? $answer_headers['content-type'] : '';
$body = null;
if ($status == 200 && strlen($data) > 0 && $type == 'application/vnd.ms-sync.wbxml') {
    $body = decode_body($data);
} elseif (strlen($data) > 0) {
    $body = is_utf8($data) ? $data : array('base64' => base64_encode($data));
}
echo json_encode(array(
    'status' => $status,
    'headers' => $answer_headers,
    'body' => $body,
    'length' => strlen($data),
)), "\n";
