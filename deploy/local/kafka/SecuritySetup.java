// Creates SCRAM users and ACLs on the secure local broker from a spec file, in one JVM start.
// Run by deploy/local/kafka.sh setup-security (java single-file source launch, kafka-clients on
// the class path): java -cp 'libs/*' SecuritySetup.java BOOTSTRAP ADMIN_PASSWORD SPEC
//   user <TAB> name <TAB> password
//   acl  <TAB> principal <TAB> TOPIC|GROUP|CLUSTER <TAB> name <TAB> LITERAL|PREFIXED <TAB> READ|WRITE|CREATE|DESCRIBE…
// Upserting a user and creating an existing ACL are harmless: running it twice gives the same state.
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class SecuritySetup {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("security.protocol", "SASL_PLAINTEXT");
        props.put("sasl.mechanism", "SCRAM-SHA-512");
        props.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required "
                + "username=\"admin\" password=\"" + args[1] + "\";");
        List<UserScramCredentialAlteration> users = new ArrayList<>();
        List<AclBinding> acls = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[2]))) {
            if (line.isBlank() || line.startsWith("#")) continue;
            String[] f = line.split("\t");
            if (f[0].equals("user")) {
                users.add(new UserScramCredentialUpsertion(
                        f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), f[2]));
            } else if (f[0].equals("acl")) {
                acls.add(new AclBinding(
                        new ResourcePattern(ResourceType.fromString(f[2]), f[3], PatternType.fromString(f[4])),
                        new AccessControlEntry("User:" + f[1], "*", AclOperation.fromString(f[5]),
                                AclPermissionType.ALLOW)));
            } else {
                throw new IllegalArgumentException("not a spec line: " + line);
            }
        }
        try (Admin admin = Admin.create(props)) {
            if (!users.isEmpty()) admin.alterUserScramCredentials(users).all().get();
            if (!acls.isEmpty()) admin.createAcls(acls).all().get();
            waitUntilServed(admin, users, acls);
        }
        System.out.println("kafka security: " + users.size() + " user(s), " + acls.size() + " ACL(s) in place");
    }

    // The controller has accepted them; the broker applies them from its metadata log a moment later. A client
    // that signs in (or is authorized) before then is refused, so return only once the broker serves them all.
    static void waitUntilServed(Admin admin, List<UserScramCredentialAlteration> users, List<AclBinding> acls)
            throws Exception {
        Set<String> names = new HashSet<>();
        for (UserScramCredentialAlteration user : users) names.add(user.user());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            Set<String> served = new HashSet<>();
            if (!names.isEmpty()) {
                for (UserScramCredentialsDescription d : admin.describeUserScramCredentials(new ArrayList<>(names))
                        .all().get().values()) {
                    if (!d.credentialInfos().isEmpty()) served.add(d.name());
                }
            }
            Collection<AclBinding> present = acls.isEmpty() ? List.of() : admin.describeAcls(AclBindingFilter.ANY).values().get();
            if (served.containsAll(names) && new HashSet<>(present).containsAll(acls)) return;
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("the broker did not serve the users and ACLs within 30 s: is it still starting?");
            }
            Thread.sleep(100);
        }
    }
}
