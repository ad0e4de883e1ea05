#!/usr/bin/perl
# wangge's own driver (not FixMyStreet code): FixMyStreet's Open311 client, its perllib/Open311.pm loaded
# UNCHANGED from a FixMyStreet checkout given with --fms, called the way FixMyStreet calls it (send-reports,
# fetch-comments, send-comments) against a running wangge (`./dev up`), with the case's steps driven over
# wangge's own HTTP API in between. It prints what the client sent and got, step by step, and exits 1 when any
# step did not read the way FixMyStreet needs it.
#
# FixMyStreet is AGPL-3.0: nothing of it is in this repository; this script only loads it from where the
# integrator keeps it, as an outside check.

use strict;
use warnings;
use utf8;

use Getopt::Long qw(GetOptions);
use Pod::Usage qw(pod2usage);

my %o = (
    endpoint => 'http://127.0.0.1:8100/open311/v2/', 'api-key' => 'demo-hotline-token',
    jurisdiction => '370402001', service => 'CM04', lat => 34.871845, long => 117.575168,
    'operator-token' => 'demo-operator-token', 'owner-token-prefix' => 'demo-owner-', timeout => 60,
    unknown_address => '文化路不存在的门牌999号',
);
my @lib;
GetOptions(\%o, 'fms=s', 'endpoint=s', 'api-key=s', 'jurisdiction=s', 'service=s', 'lat=f', 'long=f', 'api=s',
    'operator-token=s', 'owner-token-prefix=s', 'timeout=i', 'lib=s' => \@lib, 'help|h')
    or pod2usage(2);
pod2usage(-verbose => 2, -exitval => 0, -noperldoc => 1) if $o{help};
pod2usage(-message => "--fms DIR (a FixMyStreet checkout) is required", -exitval => 2) unless $o{fms};
die "--fms $o{fms}: no perllib/Open311.pm there\n" unless -f "$o{fms}/perllib/Open311.pm";
$o{endpoint} .= '/' unless $o{endpoint} =~ m{/$};      # Open311.pm appends "services.xml" to the path
($o{api} = $o{endpoint}) =~ s{^(https?://[^/]+).*}{$1} unless $o{api};

# A full FixMyStreet install loads its own modules (commonlib, carton's local/); --lib puts stand-ins first.
unshift @INC, @lib, "$o{fms}/perllib", "$o{fms}/commonlib/perllib", "$o{fms}/local/lib/perl5";
require Open311;
require DateTime;
require DateTime::Format::W3CDTF;
require LWP::UserAgent;
require HTTP::Request::Common;
require JSON::PP;
require MIME::Base64;
require Encode;

binmode STDOUT, ':encoding(UTF-8)';
binmode STDERR, ':encoding(UTF-8)';
$| = 1;

my $json = JSON::PP->new->utf8->canonical;
my $text = JSON::PP->new->canonical;    # for printing (STDOUT encodes)
my $ua = LWP::UserAgent->new(timeout => 30);
my $failures = 0;

sub say_ { print @_, "\n" }
sub step { say_ ''; say_ '== ', @_ }
sub ok_ { my ($good, $what) = @_; say_ $good ? "   ok   $what" : "   FAIL $what"; $failures++ unless $good; $good }
sub show { my $v = shift; return defined $v ? (ref $v ? $text->encode($v) : $v) : '(none)' }

# ---- the objects FixMyStreet hands to Open311.pm (only the methods Open311.pm calls) --------------------------
package FmsCheck::Cobrand { sub new { bless {}, shift } sub call_hook { return } sub base_url { 'https://fms.example' } }
package FmsCheck::Body {
    our @ISA = ('FixMyStreet::DB::Result::Body');      # Open311->new checks InstanceOf[...Body]
    sub new { bless {}, shift } sub get_cobrand_handler { return } sub areas { {} } sub name { 'wangge' }
}
package FmsCheck::User {
    sub new { my ($c, %a) = @_; bless {%a}, $c }
    sub name { $_[0]{name} } sub email { $_[0]{email} } sub phone { $_[0]{phone} }
}
package FmsCheck::PhotoSet {      # what get_photoset answers: ids, and each image's data by number
    sub new { my ($c, @jpegs) = @_; bless [@jpegs], $c }
    sub all_ids { my $s = shift; map { "photo$_.jpeg" } 0 .. $#$s }
    sub get_image_data { my ($s, %a) = @_; { content_type => 'image/jpeg', data => $s->[ $a{num} ] } }
}
package FmsCheck::Problem {
    my $next = time % 100_000_000 * 10;
    sub new {
        my ($c, %a) = @_;
        bless { id => $next++, cobrand => 'default', used_map => 1, postcode => '', state => 'confirmed',
                extra_fields => [], meta => {}, %a }, $c;
    }
    for my $f (qw(id title detail name user cobrand latitude longitude used_map postcode state external_id)) {
        no strict 'refs';
        *$f = sub { my $s = shift; $s->{$f} = shift if @_; $s->{$f} };
    }
    sub phone_waste { undef } sub service { '' } sub uprn { undef } sub send_fail_count { 0 } sub bodies { {} }
    sub non_public { 0 } sub get_extra_fields { $_[0]{extra_fields} }
    sub photo { $_[0]{jpegs} ? 'photo0.jpeg' : undef } sub get_photoset { FmsCheck::PhotoSet->new(@{ $_[0]{jpegs} || [] }) }
    sub get_extra_metadata { my ($s, $k) = @_; defined $k ? $s->{meta}{$k} : $s->{meta} }
    sub get_cobrand_logged { FmsCheck::Cobrand->new }
}
package FmsCheck::Comment {
    my $next = time % 100_000_000 * 10;    # unique per run, as FixMyStreet's comment ids are
    sub new {
        my ($c, %a) = @_;
        bless { id => $next++, confirmed => DateTime->now, extra => {}, mark_open => 0, %a }, $c;
    }
    for my $f (qw(id text name user problem problem_state mark_open confirmed extra)) {
        no strict 'refs';
        *$f = sub { $_[0]{$f} };
    }
    sub photo { my $s = shift; $s->{photo} = shift if @_; $s->{photo} }
    sub get_photoset { FmsCheck::PhotoSet->new(@{ $_[0]{jpegs} || [] }) }
    sub photos { my $s = shift; [ map { { url_full => "/photo/c/$s->{id}.$_.full.jpeg" } } 0 .. $#{ $s->{jpegs} || [] } ] }
    sub cobrand_data { '' } sub send_fail_count { 0 }
    sub get_extra_metadata { my ($s, $k) = @_; defined $k ? undef : {} }
    sub get_cobrand_logged { FmsCheck::Cobrand->new }
}
package main;

my %open311 = (endpoint => $o{endpoint}, jurisdiction => $o{jurisdiction}, api_key => $o{'api-key'},
               fixmystreet_body => FmsCheck::Body->new);
# FixMyStreet::SendReport::Open311's settings for a report
my $sender = Open311->new(%open311, always_send_latlong => 1, send_notpinpointed => 0,
                          use_service_as_deviceid => 0, extended_description => 1, multi_photos => 0,
                          upload_files => 0, always_upload_photos => 0);

# ---- wangge's own HTTP API: the steps a case goes through between the client's fetches -----------------------
sub api {
    my ($method, $path, $token, $body) = @_;
    my $req = HTTP::Request->new($method => "$o{api}$path");
    $req->header(Authorization => "Bearer $token");
    if ($body) { $req->header('Content-Type' => 'application/json'); $req->content($json->encode($body)) }
    my $res = $ua->request($req);
    my $data = eval { $json->decode($res->content) };
    say_ "   wangge $method $path → ", $res->code, ($res->is_success ? '' : ' ' . $res->decoded_content);
    return ($res, $data);
}

# A 120×80 JPEG (green, a yellow corner) standing for the owner's photo of the fix.
use constant JPEG => <<'B64';
/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAA0JCgsKCA0LCgsODg0PEyAVExISEyccHhcgLikxMC4pLSwzOko+MzZGNywtQFdBRkxO
UlNSMj5aYVpQYEpRUk//2wBDAQ4ODhMREyYVFSZPNS01T09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09P
T09PT09PT0//wAARCABQAHgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF
BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW
V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi
4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC
AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVm
Z2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq
8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDpaKKK+JPRCiiigAria7auJr1Ms+18v1PKzP7Pz/QKKKK9U8oKKKKACiiigAooooAKKKKA
O2oql/a1h/z3/wDHG/wo/taw/wCe/wD443+FfN+wq/yv7j6X29L+Zfei7RVL+1rD/nv/AOON/hR/a1h/z3/8cb/Cj2FX+V/cHt6X
8y+9F2uJrqf7WsP+e/8A443+FctXpZfTlDm5lbb9TzcxqQny8rvv+gUUUV6R5gUUUUAFFFFABRRRQAUUUUAFFFFABRRRQAUUUUAF
FFFABRRRQAUUUUAFFFFABRRRQAUUUUAFFFFABRRRQAUUUUAFFFFABRRRQAUUUUAFFFFABRRRQAUUUUAFFFFABRRRQAUUUUAFFFFA
BRRRQAUUUUAf/9k=
B64

sub jpeg { MIME::Base64::decode_base64(JPEG) }

sub upload_photo {
    my $token = shift;
    my $jpeg = jpeg();
    my $res = $ua->request(HTTP::Request::Common::POST("$o{api}/api/v1/media",
        Authorization => "Bearer $token", Content_Type => 'form-data',
        Content => [file => [undef, 'fix.jpg', 'Content-Type' => 'image/jpeg', Content => $jpeg]]));
    say_ "   wangge POST /api/v1/media → ", $res->code;
    return $res->is_success ? $json->decode($res->content)->{url} : undef;
}

# ---- fetch-comments, as FixMyStreet's Open311::GetServiceRequestUpdates runs it ---------------------------------
# (our own code following its steps: the last two hours as W3C date-times in UTC; an update needs an update_id,
# an updated_datetime inside the window and a request FixMyStreet sent; each update_id is taken once; the
# status goes through Open311.pm's map_state; a media_url through Open311.pm's add_media.)
my %problems;    # external_id → FmsCheck::Problem
my %seen;        # update_ids already taken
# FixMyStreet's visible states (its database's states table; the defaults when it cannot be asked)
my %visible = %{ (eval { scalar FixMyStreet::DB::Result::Problem->visible_states() }) || { map { $_ => 1 }
    'confirmed', 'investigating', 'in progress', 'action scheduled', 'fixed', 'fixed - council', 'fixed - user',
    'unable to fix', 'not responsible', 'duplicate', 'internal referral', 'closed' } };
sub fetch_comments {
    my $fetcher = Open311->new(%open311, extended_statuses => 0);
    my $now = DateTime->now;
    my @window = map { DateTime::Format::W3CDTF->format_datetime($_) } $now->clone->add(hours => -2), $now;
    my $updates = $fetcher->get_service_request_updates(@window);
    return (undef, $fetcher->error) unless $fetcher->success;
    my @new;
    for my $u (@{ $updates || [] }) {
        next unless defined $u->{update_id};
        my $t = eval { DateTime::Format::W3CDTF->parse_datetime($u->{updated_datetime} || '') };
        unless ($t) { say_ "   !! update $u->{update_id}: updated_datetime ", show($u->{updated_datetime}),
                           " does not parse: FixMyStreet skips it"; $failures++; next }
        my $utc = DateTime::Format::W3CDTF->format_datetime($t->clone->set_time_zone('UTC'));
        next if $utc lt $window[0] || $utc gt $window[1];
        my $p = $problems{ $u->{service_request_id} // '' } or next;
        next if $seen{ $u->{update_id} }++;
        my $state = $fetcher->map_state($u->{status});
        $state = $p->state if $state eq 'unchanged';    # as fetch-comments does
        my $comment = FmsCheck::Comment->new(problem => $p, text => $u->{description});
        my $media = '';
        if ($u->{media_url}) {
            $fetcher->add_media($u->{media_url}, $comment);
            $media = ' media_url=' . $u->{media_url} . ' → ' . ($comment->photo ? 'fetched (' . $comment->photo . ')'
                                                                                : 'NOT fetched');
        }
        my $before = $p->state;
        # fetch-comments moves the problem's state only for a visible state, not between fixed states, and only
        # when the update is not older than the problem's last update (or is its first)
        my $newer = !$p->{lastupdate} || DateTime->compare($t, $p->{lastupdate}) >= 0;
        $p->state($state) if $visible{$state} && !($before =~ /^fixed/ && $state =~ /^fixed/) && $newer;
        ok_(0, "update $u->{update_id} is dated before the problem's last update: its state is ignored")
            if !$newer && $state ne $before;
        $p->{lastupdate} = $t if $newer;
        say_ sprintf "   update %s %s status=%s → FixMyStreet state '%s'%s (problem: %s → %s) %s%s",
            $u->{service_request_id}, $u->{updated_datetime}, show($u->{status}), $state,
            $visible{$state} ? '' : ' [not a state: unchanged]', $before, $p->state,
            show($u->{external_status_code}) . ' «' . show($u->{description}) . '»', $media;
        push @new, { %$u, fms_state => $state, photo => $comment->photo };
    }
    return (\@new, '');
}

# fetch-comments every second until `code` (an external_status_code) arrives for this request
my @taken;       # every update taken so far
sub follow_until {
    my ($p, $code) = @_;
    my $deadline = time + $o{timeout};
    my $from = @taken;
    while (time < $deadline) {
        my ($new, $error) = fetch_comments();
        if (!$new) { ok_(0, "fetch-comments: $error"); return [] }
        push @taken, @$new;
        return [ @taken[$from .. $#taken] ] if grep { ($_->{external_status_code} // '') eq $code
                                                      && $_->{service_request_id} eq $p->external_id } @taken;
        sleep 1;
    }
    ok_(0, "no update with external_status_code $code for " . $p->external_id . " within $o{timeout} s");
    return [ @taken[$from .. $#taken] ];
}

# What Open311.pm posted (its debug_details hold the UTF-8 bytes it sent)
sub sent { my $client = shift; return Encode::decode('UTF-8', $client->debug_details) =~ s/\n+/ | /gr }

sub send_report {
    my ($p, %extra) = @_;
    my $client = $extra{open311} ? Open311->new(%open311, %{ delete $extra{open311} }) : $sender;
    my $id = $client->send_service_request($p, { url => 'https://fms.example/report/' . $p->id, %extra }, $o{service});
    say_ '   sent: ', sent($client);
    ok_($id, "send_service_request → service_request_id " . show($id) . ($id ? '' : ' ' . $client->error));
    $p->external_id($id) if $id;
    $problems{$id} = $p if $id;
    return $id;
}

sub post_comment {
    my ($c, %settings) = @_;
    my $poster = Open311->new(%open311, %settings);
    my $id = $poster->post_service_request_update($c);
    say_ '   sent: ', sent($poster);
    ok_($id, "post_service_request_update → update_id " . show($id) . ($id ? '' : ' ' . $poster->error));
    $seen{$id} = 1 if $id;   # FixMyStreet keeps it as the comment's external_id: fetch-comments skips it then
    return $id;
}

sub request_now {
    my $p = shift;
    my $requests = $sender->get_service_requests({ report_ids => [ $p->external_id ] });
    my $r = ($requests || [])->[0] || {};
    say_ sprintf "   get_service_requests: %s status=%s updated=%s notes «%s» media_url=%s",
        show($r->{service_request_id}), show($r->{status}), show($r->{updated_datetime}), show($r->{status_notes}),
        show($r->{media_url});
    return $r;
}

# ======================================================================================================
step "1. get_service_list";
my $services = $sender->get_service_list;
ok_(scalar(@{ ($services || {})->{service} || [] }), 'services: ' . scalar(@{ ($services || {})->{service} || [] }))
    or die "no service list: " . $sender->error;
my ($chosen) = grep { $_->{service_code} eq $o{service} } @{ $services->{service} };
ok_($chosen, "service $o{service}: " . show($chosen && $chosen->{service_name}) . ' group ' .
              show($chosen && $chosen->{group}));
my ($with_meta) = grep { ($_->{metadata} // '') eq 'true' } @{ $services->{service} };

step "2. get_service_meta_info";
for my $code (grep { defined } $o{service}, $with_meta && $with_meta->{service_code}) {
    my $meta = $sender->get_service_meta_info($code);
    my $listed = $meta && $meta->{attributes};   # Open311.pm's GroupTags fold <attributes><attribute> into a list
    my @attributes = ref $listed eq 'ARRAY' ? @$listed : ();
    ok_($meta && $meta->{service_code} && !ref $meta->{service_code} && $meta->{service_code} eq $code,
        "services/$code.xml: service_code " . show($meta && $meta->{service_code}) . ', attributes: ' .
        join(', ', map { "$_->{code} ($_->{datatype}; " . join('/', map { $_->{key} } @{ ref $_->{values} eq 'ARRAY' ? $_->{values} : [] }) .
                         ')' } @attributes));
}

step "3. send_service_request (send-reports)";
my $problem = FmsCheck::Problem->new(
    title => '垃圾箱破损', detail => '小区门口垃圾箱破损，垃圾外溢', name => '李 明',
    user => FmsCheck::User->new(email => 'li.ming@example.org', name => '李 明'),
    latitude => $o{lat}, longitude => $o{long});
send_report($problem, image_url => 'https://fms.example/photo/' . $problem->id . '.0.jpeg')
    or die "the report was not taken; nothing more to check\n";

step "3b. send_service_request with its photo uploaded (upload_files, always_upload_photos: multipart photo1)";
my $with_photo = FmsCheck::Problem->new(
    title => '路面坑洼', detail => '人行道上有个大坑', name => '孙 八', jpegs => [jpeg()],
    user => FmsCheck::User->new(email => 'sun8@example.org'), latitude => $o{lat}, longitude => $o{long});
send_report($with_photo, open311 => { upload_files => 1, always_upload_photos => 1 });
my $photo_read = request_now($with_photo);
ok_(scalar(($photo_read->{media_url} // '') =~ m{/open311/v2/media/}), 'the uploaded photo is the request\'s media_url');

step "4. get_service_requests";
my $first = request_now($problem);
ok_(($first->{status} // '') eq 'open', 'the new request is open');

step "4b. get_service_requests over the last hour (fetch-reports: what FixMyStreet would import from wangge)";
{
    sleep 2;   # FixMyStreet imports a request whose updated_datetime is inside its window: let dispatch land first
    my $now = DateTime->now;
    my %window = (start_date => DateTime::Format::W3CDTF->format_datetime($now->clone->add(hours => -1)),
                  end_date => DateTime::Format::W3CDTF->format_datetime($now));
    my $listed = $sender->get_service_requests({ %window });
    my @importable = grep {
        my $t = eval { DateTime::Format::W3CDTF->parse_datetime($_->{updated_datetime} || '') };
        my $u = $t && DateTime::Format::W3CDTF->format_datetime($t->clone->set_time_zone('UTC'));
        $_->{service_request_id} && $_->{lat} && $_->{long} && $u && $u ge $window{start_date} && $u le $window{end_date}
    } @{ $listed || [] };
    my ($ours) = grep { $_->{service_request_id} eq $problem->external_id } @importable;
    ok_($ours, scalar(@{ $listed || [] }) . ' requests, ' . scalar(@importable) . ' importable (id, lat, long, '
               . 'updated in the window), among them ' . $problem->external_id . ' as ' .
               show($ours && $open311{endpoint} && Open311->new(%open311)->map_state($ours->{status})));
}

step "5. fetch-comments until dispatched";
follow_until($problem, 'dispatched');
my (undef, $case) = api(GET => "/api/v1/cases/" . $problem->external_id, $o{'operator-token'});
my $owner = $case && $case->{owner};
ok_($owner, 'the case is held by ' . show($owner));
my $owner_token = $o{'owner-token-prefix'} . ($owner // '');
my $tasks = "/api/v1/tasks/" . $problem->external_id . "/updates";

step "6. the owner signs (签收) → fetch-comments";
api(POST => $tasks, $owner_token, { type => 'task.accepted' });
follow_until($problem, 'in_progress');

step "7. post_service_request_update (send-comments): the resident's comment, then again (a retry)";
my $comment = FmsCheck::Comment->new(problem => $problem, text => '垃圾还在外溢，请尽快处理', name => '李 明',
                                     user => FmsCheck::User->new(email => 'li.ming@example.org'));
my $update_id = post_comment($comment, extended_statuses => 0);
my $again = post_comment($comment, extended_statuses => 0);
ok_(defined $update_id && defined $again && $update_id eq $again, 'the retry answers the same update_id');

step "7b. a comment with its photo uploaded (upload_files_for_updates, always_upload_photos: multipart photo1)";
my $pictured = FmsCheck::Comment->new(problem => $problem, text => '附现场照片', name => '李 明', jpegs => [jpeg()],
                                      user => FmsCheck::User->new(email => 'li.ming@example.org'));
$pictured->photo('photo0.jpeg');
my $pictured_id = post_comment($pictured, upload_files_for_updates => 1, always_upload_photos => 1);
my $arrived;
for (1 .. $o{timeout}) {   # the comment's update is written once wangge.cases reached intake's reader
    my $raw = Open311->new(%open311)->get_service_request_updates;   # every update of the last 24 hours
    ($arrived) = grep { ($_->{update_id} // '') eq ($pictured_id // '') } @{ $raw || [] };
    last if $arrived;
    sleep 1;
}
ok_($arrived && $arrived->{media_url}, 'the uploaded photo is on the comment: media_url ' . show($arrived && $arrived->{media_url}));

step "8. the owner reports progress with a photo, then resolves → fetch-comments (photos fetched by add_media)";
my $photo = upload_photo($owner_token);
api(POST => $tasks, $owner_token, { type => 'task.progress', note => '已联系环卫，明早更换', media => [$photo] });
api(POST => $tasks, $owner_token, { type => 'task.resolved', result => '已更换新垃圾箱', media => [$photo] });
my $resolved = follow_until($problem, 'resolved');
my @with_photo = grep { $_->{media_url} } @$resolved;
ok_(@with_photo && !(grep { !$_->{photo} } @with_photo), 'every media_url of an update was fetched by add_media');


step "9. the on-site check passes (核查) → closed → fetch-comments";
api(POST => "/api/v1/cases/" . $problem->external_id . "/check", $o{'operator-token'}, { passed => JSON::PP::true() });
my $closed = follow_until($problem, 'closed-resolved');
ok_($problem->state eq 'fixed - council', "FixMyStreet's problem state: " . $problem->state);
my $last = request_now($problem);
ok_(($last->{status} // '') eq 'closed' && ($last->{updated_datetime} // '') gt ($first->{updated_datetime} // ''),
    'the request is closed and its updated_datetime moved');

step "10. the resident says it is not fixed: a comment with status REOPEN (extended statuses, mark_reopen)";
my $reopen = FmsCheck::Comment->new(problem => $problem, text => '垃圾箱又坏了，没有修好', name => '李 明',
                                    problem_state => 'confirmed', mark_open => 1,
                                    user => FmsCheck::User->new(email => 'li.ming@example.org'));
post_comment($reopen, extended_statuses => 1, mark_reopen => 1);
my ($back) = grep { ($_->{external_status_code} // '') eq 'reopened' } @{ follow_until($problem, 'reopened') };
ok_($back && $back->{fms_state} eq 'confirmed', "the reopening reads as FixMyStreet's " . show($back && $back->{fms_state}));

step "11. rejected and merged reports (a body that sends the address, not the point: always_send_latlong 0)";
my %by_address = (open311 => { always_send_latlong => 0 });
my $junk = FmsCheck::Problem->new(title => '不知道', detail => '说不清楚在哪里', name => '王 五', used_map => 0,
                                  postcode => $o{unknown_address}, user => FmsCheck::User->new(email => 'w5@example.org'));
my $dup = FmsCheck::Problem->new(title => '同一个垃圾箱', detail => '门口垃圾箱坏了', name => '赵 六', used_map => 0,
                                 postcode => $o{unknown_address}, user => FmsCheck::User->new(email => 'z6@example.org'));
my $target = FmsCheck::Problem->new(title => '路灯不亮', detail => '路灯不亮', name => '钱 七',
                                    latitude => $o{lat}, longitude => $o{long},
                                    user => FmsCheck::User->new(email => 'q7@example.org'));
send_report($target, open311 => { always_send_latlong => 1 });
send_report($junk, %by_address);
send_report($dup, %by_address);
follow_until($target, 'accepted');
api(POST => "/api/v1/cases/" . $junk->external_id . "/reject", $o{'operator-token'}, { reason => '地址不明，不予受理' });
api(POST => "/api/v1/cases/" . $dup->external_id . "/merge", $o{'operator-token'}, { into => $target->external_id });
follow_until($junk, 'rejected');
follow_until($dup, 'merged');
ok_($junk->state eq 'not responsible', "the rejected report reads: " . $junk->state);
ok_($dup->state eq 'duplicate', "the merged report reads: " . $dup->state);
# get_service_requests tells what fetch-comments told: closed (not fixed: the notes say why), and a rejected request
# without a place, so fetch-reports would not import it as a fixed problem.
my $junk_read = request_now($junk);
ok_(($junk_read->{status} // '') eq 'closed' && ($junk_read->{status_notes} // '') =~ /不予立案/ && !$junk_read->{lat},
    'the rejected request is listed closed, its notes say 不予立案 and why, no place');
my $dup_read = request_now($dup);
ok_(($dup_read->{status} // '') eq 'closed' && ($dup_read->{status_notes} // '') =~ /合并/,
    'the merged request is listed closed, its notes name the case it follows');

step "12. explained (解释说明): the owner cannot fix it now, the check closes it";
follow_until($target, 'dispatched');
my (undef, $tcase) = api(GET => "/api/v1/cases/" . $target->external_id, $o{'operator-token'});
my $ttasks = "/api/v1/tasks/" . $target->external_id . "/updates";
my $ttoken = $o{'owner-token-prefix'} . ($tcase->{owner} // '');
api(POST => $ttasks, $ttoken, { type => 'task.accepted' });
api(POST => $ttasks, $ttoken, { type => 'task.explained', explanation => '线路改造，需等明年春季统一施工' });
follow_until($target, 'explained');
api(POST => "/api/v1/cases/" . $target->external_id . "/check", $o{'operator-token'}, { passed => JSON::PP::true() });
follow_until($target, 'closed-explained');
ok_($target->state eq 'unable to fix', "the explained case reads: " . $target->state);

say_ '';
say_ $failures ? "$failures step(s) FAILED" : 'every step read as FixMyStreet needs it';
exit($failures ? 1 : 0);

__END__

=encoding utf8

=head1 NAME

fms_check.pl - FixMyStreet's own Open311 client (its perllib/Open311.pm, unchanged) against a running wangge

=head1 SYNOPSIS

  perl tools/fms_check.pl --fms /path/to/fixmystreet [--endpoint URL] [--api-key KEY] [options]

=head1 OPTIONS

=over

=item B<--fms DIR>  (required) a FixMyStreet checkout: its perllib/Open311.pm is loaded from there, unchanged
(with its commonlib/perllib and carton's local/lib/perl5 when present).

=item B<--endpoint URL>  wangge's Open311 endpoint (default http://127.0.0.1:8100/open311/v2/ — the front door
of ./dev up).

=item B<--api-key KEY>  the credential FixMyStreet posts as api_key (default demo-hotline-token).

=item B<--jurisdiction ID>  the jurisdiction_id FixMyStreet sends (default 370402001, the demo street).

=item B<--api URL>  wangge's base URL for driving the case's steps (default: the endpoint's scheme and host).

=item B<--operator-token T>, B<--owner-token-prefix P>  the demo credentials that sign, resolve, check, reject
and merge (default demo-operator-token; the holder's token is P + its owner code, default demo-owner-).

=item B<--service CODE>, B<--lat>, B<--long>  the category and the point reported (default CM04 at the demo street).

=item B<--lib DIR>  (repeatable) put DIR first on @INC: stand-ins for FixMyStreet-internal modules that need its
database and config (FixMyStreet, FixMyStreet::DB, Utils, …) when only perllib/ is at hand.

=item B<--timeout S>  how long to wait for each step to show in fetch-comments (default 60).

=back

=head1 WHAT IT DOES

get_service_list, get_service_meta_info, send_service_request (a problem shaped as FixMyStreet passes it),
get_service_requests, then fetch-comments (get_service_request_updates over the last two hours, map_state,
add_media) across sign → progress with a photo → resolve → check → close, post_service_request_update (a
comment, and its retry), a REOPEN comment, a rejected, a merged and an explained report. Exit 0 when every step
reads as FixMyStreet needs it.

=cut
